# Kubernetes: images, a kind cluster with cloud-provider-kind and kube-prometheus-stack, the
# Helm chart, and a smoke test of all of it. Needs docker (engine + buildx), kind, helm and
# kubectl on PATH; every target checks for the ones it uses before doing anything.
# Walk-through: docs/kubernetes.md.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

KIND_CLUSTER ?= trading-telemetry
KIND_CONFIG := kind-config.yaml
KUBE_CONTEXT ?= kind-$(KIND_CLUSTER)
MONITORING_NAMESPACE ?= monitoring
MONITORING_RELEASE ?= monitoring
KPS_VALUES := deploy/kind/kube-prometheus-stack-values.yaml
# Pinned so `make kind-up` installs the same thing next month; read on 2026-12-07 from the
# projects' own repositories (git tags and files of the snapshots this project can fetch):
# kube-prometheus-stack 88.5.3 is the newest tag kube-prometheus-stack-* in
# prometheus-community/helm-charts (charts/kube-prometheus-stack/Chart.yaml, version 88.5.3).
# kind v0.32.0 is the newest kind release tag in kubernetes-sigs/kind (v0.33.0 is an alpha);
# its default node image (pkg/apis/config/defaults/image.go at v0.32.0) is what
# kind-config.yaml pins. cloud-provider-kind v0.11.1 is the newest tag in
# kubernetes-sigs/cloud-provider-kind; it serves LoadBalancer Services, Ingress (class
# "cloud-provider-kind", since v0.9.0) and Gateway API, kind's current recommendation now
# that ingress-nginx is retired. Override on the command line (KPS_CHART_VERSION=...); keep
# the node image in step with KIND_MIN_VERSION.
KPS_CHART_VERSION ?= 88.5.3
KIND_MIN_VERSION ?= v0.32.0
CLOUD_PROVIDER_KIND_IMAGE ?= registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.11.1
CLOUD_PROVIDER_KIND_CONTAINER ?= $(KIND_CLUSTER)-cloud-provider
# Docker Desktop (macOS, Windows) and rootless engines cannot route to the kind network: set
# CLOUD_PROVIDER_KIND_ARGS=--enable-lb-port-mapping to publish each load balancer on a host port.
CLOUD_PROVIDER_KIND_ARGS ?=
# cloud-provider-kind turns an Ingress into this Gateway in the Ingress' namespace
# (pkg/ingress/controller.go, GatewayName) and runs its Envoy as a container labelled
# <label>=<cluster>/<namespace>/<gateway> (pkg/constants, pkg/gateway/envoy.go): with port
# mapping, `docker port` on that container gives the host port of the Ingress.
CLOUD_PROVIDER_KIND_GATEWAY := kind-ingress-gateway
CLOUD_PROVIDER_KIND_GATEWAY_LABEL := io.x-k8s.cloud-provider-kind.gateway.name
GRAFANA_PORT ?= 3000
UI_PORT ?= $(UI_SERVICE_PORT)
# Where the UI reads totals from: kube-prometheus-stack's Prometheus Service (sum over replicas).
PROMETHEUS_URL ?= http://$(MONITORING_RELEASE)-kube-prometheus-prometheus.$(MONITORING_NAMESPACE):9090
# The images: one Dockerfile, one --target each, and the workspace package (and uv extras)
# its venv holds. Each image carries exactly what its service runs.
publisher_IMAGE := $(PUBLISHER_IMAGE)
publisher_PACKAGE := trading-publisher
publisher_EXTRAS := ui http
sidecar_IMAGE := $(SIDECAR_IMAGE)
sidecar_PACKAGE := trading-sidecar
operator_IMAGE := $(OPERATOR_IMAGE)
operator_PACKAGE := trading-operator
bench_IMAGE := $(BENCH_IMAGE)
bench_PACKAGE := trading-bench
IMAGE_REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE := $(shell git remote get-url origin 2>/dev/null)
IMAGE_CREATED = $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# No provenance/SBOM attestations: with them, Docker Engine 29+ (containerd image store) makes
# a multi-manifest image that `kind load docker-image` cannot import ("ctr: content digest
# ... not found", kubernetes-sigs/kind#3795). --provenance needs BuildKit (buildx).
DOCKER_BUILD := docker build --provenance=false --sbom=false
# Helm waits this long for `make deploy` (rollout of the Deployments and the StatefulSet).
DEPLOY_TIMEOUT ?= 5m
# The LatencyBenchmark `make bench-job` renders: its timeoutSeconds, plus a margin for the
# wait, so the benchmark's own Failed/DeadlineExceeded is what you see.
BENCH_DEADLINE ?= $(shell sed -n '/^benchmark:/,/^[a-z]/s/^  timeoutSeconds: *\([0-9][0-9]*\)$$/\1/p' $(CHART)/values.yaml)
BENCH_TIMEOUT_MARGIN ?= 120
# `make bench-job` reads the state this often, and prints this many lines of the Job's log.
BENCH_POLL_SECONDS ?= 5
BENCH_LOG_LINES ?= 30

KUBECTL := kubectl --context $(KUBE_CONTEXT)
HELM := helm --kube-context $(KUBE_CONTEXT)

# $(call need-tools,docker kind ...): fail at once, naming each missing tool and where to get it.
define need-tools
	@missing=""; \
	for tool in $(1); do command -v "$$tool" >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make $@: missing required tool(s):$$missing" >&2; \
	  for tool in $$missing; do case "$$tool" in \
	    docker) echo "  docker:  https://docs.docker.com/get-docker/" >&2 ;; \
	    kind) echo "  kind:    https://kind.sigs.k8s.io/docs/user/quick-start/#installation" >&2 ;; \
	    helm) echo "  helm:    https://helm.sh/docs/intro/install/" >&2 ;; \
	    kubectl) echo "  kubectl: https://kubernetes.io/docs/tasks/tools/" >&2 ;; \
	  esac; done; \
	  exit 1; \
	fi
endef

# Docker installed is not enough: kind and docker build need the engine running.
define need-docker-engine
	@docker info >/dev/null 2>&1 || { \
	  echo "make $@: docker is installed but the Docker engine is not reachable (start Docker first)" >&2; \
	  exit 1; }
endef

# --provenance/--sbom and RUN --mount need BuildKit, which the buildx plugin provides.
define need-buildx
	@docker buildx version >/dev/null 2>&1 || { \
	  echo "make $@: docker buildx is missing; the images need BuildKit" \
	    "(https://github.com/docker/buildx#installing)" >&2; \
	  exit 1; }
endef

define need-cluster
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || { \
	  echo "make $@: kind cluster '$(KIND_CLUSTER)' does not exist; run 'make kind-up' first" >&2; \
	  exit 1; }
endef

.PHONY: chart-readme pin-base-images images kind-load kind-up kind-down deploy ui grafana grafana-forward bench-job kind-smoke

images: ## build the publisher, sidecar, operator and benchmark images (needs buildx)
	$(call need-tools,docker)
	$(call need-docker-engine)
	$(call need-buildx)
	$(call build-image,publisher)
	$(call build-image,sidecar)
	$(call build-image,operator)
	$(call build-image,bench)

# $(call build-image,<target>): one image from the Dockerfile.
define build-image
$(DOCKER_BUILD) -f Dockerfile --target $(1) \
	  --build-arg PACKAGE=$($(1)_PACKAGE) \
	  --build-arg UV_EXTRAS="$(foreach e,$($(1)_EXTRAS),--extra $(e))" \
	  --build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$(IMAGE_REVISION) \
	  --build-arg CREATED=$(IMAGE_CREATED) --build-arg SOURCE=$(IMAGE_SOURCE) \
	  -t $($(1)_IMAGE) .
endef

chart-readme: sync ## regenerate the values table of charts/trading-telemetry/README.md
	$(RUN) python scripts/chart_readme.py

pin-base-images: ## pin the Dockerfile's base images to the digests their tags have today
	$(call need-tools,docker)
	$(call need-buildx)
	@for arg in PYTHON_IMAGE UV_IMAGE; do \
	  ref=$$(sed -n "s/^ARG $$arg=\(.*\)$$/\1/p" Dockerfile); tag=$${ref%@*}; \
	  digest=$$(docker buildx imagetools inspect "$$tag" | sed -n 's/^Digest: *//p'); \
	  case "$$digest" in sha256:*) ;; *) echo "make $@: no digest for $$tag" >&2; exit 1 ;; esac; \
	  sed -i.bak "s|^ARG $$arg=.*|ARG $$arg=$$tag@$$digest|" Dockerfile && rm -f Dockerfile.bak; \
	  echo "$$arg=$$tag@$$digest"; \
	done

kind-load: ## copy the built images into the kind cluster's node
	$(call need-tools,docker kind)
	$(call need-docker-engine)
	$(call need-cluster)
	kind load docker-image --name $(KIND_CLUSTER) $(PUBLISHER_IMAGE) $(SIDECAR_IMAGE) $(OPERATOR_IMAGE) $(BENCH_IMAGE)

kind-up: ## check every tool, create the kind cluster, cloud-provider-kind, kube-prometheus-stack
	$(call need-tools,docker kind helm kubectl)
	@echo "tools:"; deploy/kind/check-tools.sh $(KIND_MIN_VERSION) docker buildx kind helm kubectl cloud-provider-kind || { \
	  echo "make $@: fix the MISSING lines above first" >&2; exit 1; }
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster '$(KIND_CLUSTER)' exists, reusing it"; \
	else \
	  echo "kind create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 120s"; \
	  kind create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 120s; \
	fi
	@if [ -n "$$(docker ps -q --filter name=^$(CLOUD_PROVIDER_KIND_CONTAINER)$$)" ]; then \
	  echo "cloud-provider-kind container '$(CLOUD_PROVIDER_KIND_CONTAINER)' is running, reusing it"; \
	else \
	  echo "docker run cloud-provider-kind ($(CLOUD_PROVIDER_KIND_IMAGE)) on the kind network"; \
	  docker rm -f $(CLOUD_PROVIDER_KIND_CONTAINER) >/dev/null 2>&1 || true; \
	  docker run -d --name $(CLOUD_PROVIDER_KIND_CONTAINER) --restart unless-stopped --network kind \
	    -v /var/run/docker.sock:/var/run/docker.sock \
	    $(CLOUD_PROVIDER_KIND_IMAGE) $(CLOUD_PROVIDER_KIND_ARGS) >/dev/null; \
	fi
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	helm repo update prometheus-community
	$(HELM) upgrade --install $(MONITORING_RELEASE) prometheus-community/kube-prometheus-stack \
	  --version $(KPS_CHART_VERSION) \
	  --namespace $(MONITORING_NAMESPACE) --create-namespace \
	  -f $(KPS_VALUES) \
	  --wait --timeout 10m
	@echo "cluster '$(KIND_CLUSTER)' is up; next: make images kind-load deploy"

kind-down: ## delete the kind cluster, everything in it and the cloud-provider-kind container
	$(call need-tools,kind)
	kind delete cluster --name $(KIND_CLUSTER)
	-docker rm -f $(CLOUD_PROVIDER_KIND_CONTAINER)

deploy: ## helm upgrade --install the chart (with the operator) into the kind cluster
	$(call need-tools,kind helm kubectl)
	$(call need-cluster)
	address=$$($(grafana-address)); \
	$(HELM) upgrade --install $(RELEASE) $(CHART) \
	  --namespace $(NAMESPACE) --create-namespace \
	  --set networkPolicy.monitoringNamespace=$(MONITORING_NAMESPACE) \
	  --set-string serviceMonitor.additionalLabels.release=$(MONITORING_RELEASE) \
	  --set-string prometheusRule.additionalLabels.release=$(MONITORING_RELEASE) \
	  --set-string publisher.prometheusUrl=$(PROMETHEUS_URL) \
	  $${address:+--set-string dashboards.grafanaUrl=http://$$address/} \
	  --set operator.enabled=true \
	  --wait --timeout $(DEPLOY_TIMEOUT)

ui: ## port-forward the Streamlit UI to http://localhost:8501 (UI_PORT=...)
	$(call need-tools,kind kubectl)
	$(call need-cluster)
	@echo "trading UI: http://localhost:$(UI_PORT)  (Ctrl-C stops the port-forward)"
	$(KUBECTL) --namespace $(NAMESPACE) port-forward service/$(FULLNAME)-ui $(UI_PORT):$(UI_SERVICE_PORT)

# The Grafana login, from kube-prometheus-stack's Secret; exits non-zero with the reason.
define grafana-login
	secret="$(MONITORING_RELEASE)-grafana"; \
	user=$$($(KUBECTL) --namespace $(MONITORING_NAMESPACE) get secret $$secret \
	    -o jsonpath='{.data.admin-user}') && [ -n "$$user" ] && \
	password=$$($(KUBECTL) --namespace $(MONITORING_NAMESPACE) get secret $$secret \
	    -o jsonpath='{.data.admin-password}') && [ -n "$$password" ] && \
	user=$$(printf '%s' "$$user" | base64 -d) && \
	password=$$(printf '%s' "$$password" | base64 -d) || { \
	  echo "make $@: cannot read secret $$secret in namespace $(MONITORING_NAMESPACE);" \
	    "is kube-prometheus-stack installed ('make kind-up')?" >&2; exit 1; }
endef

# Grafana's Ingress address on the kind network (cloud-provider-kind fills it in), or nothing.
define grafana-address
$(KUBECTL) --namespace $(MONITORING_NAMESPACE) get ingress $(MONITORING_RELEASE)-grafana \
	  -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true
endef

# With --enable-lb-port-mapping: the host port Docker maps to port 80 of the Envoy container
# serving Grafana's Ingress, or nothing.
define grafana-mapped-port
command -v docker >/dev/null 2>&1 && \
	  container=$$(docker ps -q --filter \
	    label=$(CLOUD_PROVIDER_KIND_GATEWAY_LABEL)=$(KIND_CLUSTER)/$(MONITORING_NAMESPACE)/$(CLOUD_PROVIDER_KIND_GATEWAY) \
	    2>/dev/null | head -n1) && [ -n "$$container" ] && \
	  docker port "$$container" 80/tcp 2>/dev/null | head -n1 | sed 's/.*://' || true
endef

grafana: ## print Grafana's URL through the Ingress (cloud-provider-kind) and its login
	$(call need-tools,kind kubectl)
	$(call need-cluster)
	@$(grafana-login); \
	address=$$($(grafana-address)); \
	port=$$($(grafana-mapped-port)); \
	echo "login:     $$user / $$password"; \
	if [ -n "$$address" ]; then \
	  echo "Grafana:   http://$$address/   (Linux: the kind network is routable from the host)"; \
	  echo "dashboard: http://$$address/d/trading-telemetry"; \
	fi; \
	if [ -n "$$port" ]; then \
	  echo "Grafana:   http://localhost:$$port/   (cloud-provider-kind --enable-lb-port-mapping)"; \
	  echo "dashboard: http://localhost:$$port/d/trading-telemetry"; \
	elif [ -n "$$address" ]; then \
	  echo "macOS/Windows (Docker Desktop) cannot reach $$address: 'make kind-down', then"; \
	  echo "  'make kind-up CLOUD_PROVIDER_KIND_ARGS=--enable-lb-port-mapping' and 'make grafana' again"; \
	fi; \
	if [ -z "$$address$$port" ]; then \
	  echo "The Ingress has no address yet (is cloud-provider-kind running? docker ps);"; \
	  echo "'make grafana-forward' needs nothing but kubectl."; \
	fi

grafana-forward: ## port-forward Grafana to http://localhost:3000 (GRAFANA_PORT=...) and print the login
	$(call need-tools,kind kubectl)
	$(call need-cluster)
	@$(grafana-login); \
	echo "Grafana:   http://localhost:$(GRAFANA_PORT)/  (Ctrl-C stops the port-forward)"; \
	echo "login:     $$user / $$password"; \
	echo "dashboard: http://localhost:$(GRAFANA_PORT)/d/trading-telemetry"
	$(KUBECTL) --namespace $(MONITORING_NAMESPACE) port-forward service/$(MONITORING_RELEASE)-grafana $(GRAFANA_PORT):80

bench-job: ## run a LatencyBenchmark (burst) through the operator and print its status
	$(call need-tools,kind helm kubectl)
	$(call need-cluster)
	@case "$(BENCH_DEADLINE)" in ''|*[!0-9]*) \
	  echo "make bench-job: BENCH_DEADLINE must be whole seconds, got '$(BENCH_DEADLINE)'" >&2; \
	  exit 1 ;; esac
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values \
	  --set operator.enabled=true --set benchmark.enabled=true \
	  --set benchmark.timeoutSeconds=$(BENCH_DEADLINE) --wait --timeout $(DEPLOY_TIMEOUT)
	@selector=app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=benchmark,app.kubernetes.io/managed-by=Helm; \
	name=$$($(KUBECTL) --namespace $(NAMESPACE) get lbench -l $$selector \
	  -o jsonpath='{.items[0].metadata.name}') && [ -n "$$name" ] || { \
	  echo "make bench-job: no LatencyBenchmark of release $(RELEASE) in namespace $(NAMESPACE)" >&2; exit 1; }; \
	wait_s=$$(( $(BENCH_DEADLINE) + $(BENCH_TIMEOUT_MARGIN) )); \
	echo "waiting up to $${wait_s}s for LatencyBenchmark $$name to end (Succeeded or Failed)"; \
	state=""; waited=0; \
	while :; do \
	  state=$$($(KUBECTL) --namespace $(NAMESPACE) get lbench/$$name -o jsonpath='{.status.state}' 2>/dev/null); \
	  case "$$state" in Succeeded|Failed) break ;; esac; \
	  [ "$$waited" -lt "$$wait_s" ] || break; \
	  sleep $(BENCH_POLL_SECONDS); waited=$$(( waited + $(BENCH_POLL_SECONDS) )); \
	done; \
	$(KUBECTL) --namespace $(NAMESPACE) get lbench/$$name -o wide || true; \
	$(KUBECTL) --namespace $(NAMESPACE) get lbench/$$name \
	  -o jsonpath='{.status.reason}: {.status.message}{"\n"}' || true; \
	job=$$($(KUBECTL) --namespace $(NAMESPACE) get lbench/$$name -o jsonpath='{.status.job}' 2>/dev/null); \
	if [ -n "$$job" ]; then \
	  echo "--- last $(BENCH_LOG_LINES) log lines of job/$$job:"; \
	  $(KUBECTL) --namespace $(NAMESPACE) logs job/$$job --tail=$(BENCH_LOG_LINES) || true; \
	fi; \
	[ "$$state" = Succeeded ] || { \
	  echo "make bench-job: LatencyBenchmark $$name ended $${state:-without a state after $${wait_s}s}" >&2; \
	  exit 1; }

kind-smoke: ## kind-up, images, load, deploy, helm test, then check it all from outside (KEEP=0 tears down)
	$(call need-tools,docker kind helm kubectl)
	KUBE_CONTEXT=$(KUBE_CONTEXT) NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) \
	  FULLNAME=$(FULLNAME) MONITORING_NAMESPACE=$(MONITORING_NAMESPACE) \
	  MONITORING_RELEASE=$(MONITORING_RELEASE) UV_RUN="$(RUN)" KEEP=$(or $(KEEP),1) \
	  deploy/kind/smoke.sh
