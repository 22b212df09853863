# trading-telemetry — every target installs what it needs; see README.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Never let uv download a Python build: the machine's interpreter is the one we use.
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: help uv sync system-deps run apps-up open test test-unit lint config-docs infra-up infra-down env-setup clean keys

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
	  '{ n[NR] = $$1; d[NR] = $$2; if (length($$1) > w) w = length($$1) } \
	   END { for (i = 1; i <= NR; i++) printf "  make %-" w "s  %s\n", n[i], d[i] }'

# Debian's python3 ships without pip and refuses system-wide pip installs (PEP 668);
# a --user install next to it is the supported way, and `python3 -m uv` finds it.
uv: ## install uv with pip when it is missing
	@if command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1; then exit 0; fi; \
	if ! python3 -m pip --version >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null; \
	  else echo "uv is missing and so is pip: install one (sudo apt-get install python3-pip)"; exit 1; fi; \
	fi; \
	echo "installing uv (the Python package manager) with pip…"; \
	python3 -m pip install --quiet uv 2>/dev/null \
	  || python3 -m pip install --quiet --user --break-system-packages uv

# The first sync downloads and compiles everything (about a minute, silent with --quiet):
# say so, so a first `make run` does not look hung.
sync: uv ## create .venv from the committed uv.lock
	@if [ ! -x .venv/bin/python ]; then \
	  echo "creating .venv from uv.lock: downloading and installing the Python packages (first run only, about a minute)…"; \
	fi
	@$(UV) sync --frozen --all-packages --quiet --compile-bytecode

system-deps: ## Debian prometheus (with promtool), chromium, shellcheck for the tests (apt, when root)
	@missing=""; \
	command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
	  || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v shellcheck >/dev/null 2>&1 || missing="$$missing shellcheck"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing — install them (sudo apt-get install$$missing); their tests will fail without"; \
	  fi; \
	fi

run: sync ## start sidecar, UI and (when installed) Prometheus; Ctrl-C stops all
	@$(RUN) python scripts/run_local.py

apps-up: run ## the MVP's name for `make run`

open: sync ## open the UI, Prometheus and (with infra-up) Grafana in a browser, or print their URLs
	@$(RUN) python scripts/open_urls.py

test: sync system-deps lint ## lint, then both test tiers: unit, then e2e (real processes and sockets)
	@$(RUN) pytest

test-unit: sync ## the fast tier only: in-process tests under tests/unit, seconds
	@env -u PYTHONDONTWRITEBYTECODE TT_TEST_FUZZ_SCALE=0.1 $(RUN) pytest tests/unit -q

lint: sync ## ruff + mypy (strict)
	@$(RUN) ruff check services tests scripts
	@$(RUN) ruff format --check services tests scripts
	@$(RUN) mypy services tests scripts

config-docs: sync ## regenerate docs/configuration.md's settings tables from the settings classes
	@$(RUN) python scripts/config_docs.py

# Three separate checks, because each fails differently: no `docker` binary, a docker
# without the compose plugin ("unknown shorthand flag: 'f'"), or no running engine.
define docker_compose_check
	@command -v docker >/dev/null 2>&1 || { echo "$@: docker is not installed (https://docs.docker.com/engine/install/)"; exit 1; }
	@docker compose version >/dev/null 2>&1 || { echo "$@: the docker compose plugin is missing (install docker-compose-plugin)"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "$@: the docker engine is not running or not reachable (start it, or check your docker group)"; exit 1; }
endef

infra-up: ## optional, needs Docker + compose: Prometheus + Grafana with the dashboards
	$(docker_compose_check)
	@docker compose -f docker-compose.infra.yml up -d
	@echo "Grafana http://127.0.0.1:3000  Prometheus http://127.0.0.1:9091"
	@echo "The containers scrape the host's sidecar: start it with TT_SIDECAR_HTTP_HOST=0.0.0.0 make run"

infra-down: ## stop the optional Docker Prometheus + Grafana
	$(docker_compose_check)
	@docker compose -f docker-compose.infra.yml down

KEYS_DIR ?= keys
keys: sync ## CURVE certificates for the sidecar and a publisher into ./keys (KEYS_DIR=...); docs/operations.md
	@$(RUN) trading-sidecar-keys --out $(KEYS_DIR) $(KEYS_ARGS)

env-setup: ## copy .env.sample to .env (optional: everything works without it)
	@if [ -f .env ]; then echo ".env exists, leaving it"; else cp .env.sample .env && echo "wrote .env"; fi

clean: ## delete .venv, caches and results/
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache results

# Kubernetes, benchmark and operator targets live in their own fragments.
include $(sort $(wildcard mk/*.mk))
