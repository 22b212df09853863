# syntax=docker/dockerfile:1
# Every trading-telemetry image, from one file: `make images` builds each one with
#   --target <publisher|sidecar|operator|bench> --build-arg PACKAGE=<workspace package>
#   [--build-arg UV_EXTRAS="--extra ..."]
# so an image holds exactly what its service runs (mk/kubernetes.mk lists the four).
# Build from the repository root, which is the uv workspace.
#
# Base images: tags, pinned by digest with `make pin-base-images` on a machine that can reach
# the registries (it rewrites the two defaults below to tag@sha256:...); see docs/kubernetes.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- build: resolve nothing, install exactly what uv.lock pins ----
FROM ${PYTHON_IMAGE} AS builder
ARG PACKAGE
ARG UV_EXTRAS=""
# No compiler in any stage: every locked dependency ships a wheel for linux amd64 and arm64.
RUN test -n "$PACKAGE" || { echo "build with --build-arg PACKAGE=<workspace package>" >&2; exit 1; }
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when a pyproject.toml or
# uv.lock changes, not on every source edit. Every workspace member's pyproject.toml is
# needed (the lock covers the whole workspace); --locked fails the build if uv.lock is stale.
COPY pyproject.toml uv.lock ./
COPY services/bench/pyproject.toml services/bench/
COPY services/contract/pyproject.toml services/contract/
COPY services/devkit/pyproject.toml services/devkit/
COPY services/operator/pyproject.toml services/operator/
COPY services/publisher/pyproject.toml services/publisher/
COPY services/sidecar/pyproject.toml services/sidecar/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-install-workspace --no-dev --no-editable --package $PACKAGE $UV_EXTRAS
# Then the workspace's own packages. --no-editable: they are copied into the venv, so the
# final stage needs the venv only.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package $PACKAGE $UV_EXTRAS

# ---- run: slim Python and the venv; no compiler, no uv, no source tree ----
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG PACKAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
# OCI annotations (image-spec annotations.md); `make images` passes version, git revision,
# build time and the git remote.
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.vendor="trading-telemetry" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      io.trading-telemetry.package="${PACKAGE}"
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin app
# Owned by root: the app user can read and run the venv but never modify it.
COPY --from=builder /app/.venv /app/.venv
# HOME and every writer live under /tmp (an emptyDir in the chart), so the root filesystem
# can be read-only. USER/LOGNAME: getpass.getuser() (kopf calls it at start-up) reads them
# before the passwd database, so the process also starts as an arbitrary uid with no passwd
# entry (OpenShift's restricted policy) instead of dying with "getpwuid(): uid not found".
ENV PATH=/app/.venv/bin:$PATH \
    HOME=/tmp \
    USER=app \
    LOGNAME=app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001

# ---- the four images ----
FROM runtime AS publisher
LABEL org.opencontainers.image.title="trading-telemetry-publisher" \
      org.opencontainers.image.description="Streamlit trading UI and HTTP trade endpoint, publishing trades over ZeroMQ"
ENV STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
EXPOSE 8501
CMD ["trading-ui"]

FROM runtime AS sidecar
LABEL org.opencontainers.image.title="trading-telemetry-sidecar" \
      org.opencontainers.image.description="ZeroMQ PULL in, Prometheus /metrics out"
EXPOSE 5555 8001 8003
CMD ["trading-sidecar"]

FROM runtime AS operator
LABEL org.opencontainers.image.title="trading-telemetry-operator" \
      org.opencontainers.image.description="kopf operator running LatencyBenchmark resources as Jobs"
# kopf's liveness endpoint (the chart's livenessProbe).
EXPOSE 8080
# The chart passes the same command with the namespace from the downward API; this default
# serves the namespace in POD_NAMESPACE (or "default") when the image is run by hand.
CMD ["sh", "-c", "exec kopf run --standalone --namespace \"${POD_NAMESPACE:-default}\" --liveness=http://0.0.0.0:8080/healthz -m trading_operator.handlers"]

FROM runtime AS bench
LABEL org.opencontainers.image.title="trading-telemetry-bench" \
      org.opencontainers.image.description="trading-bench: the latency benchmark the operator's Jobs run"
ENV MPLCONFIGDIR=/tmp/matplotlib
CMD ["trading-bench", "--help"]
