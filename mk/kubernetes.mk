# Kubernetes: images, a kind cluster with ingress-nginx and kube-prometheus-stack, the Helm
# chart. Needs docker, kind, helm and kubectl on PATH; every target checks for the ones it
# uses before doing anything. Walk-through: docs/kubernetes.md.

KIND_CLUSTER ?= trading-telemetry
KIND_CONFIG := kind-config.yaml
KUBE_CONTEXT ?= kind-$(KIND_CLUSTER)
NAMESPACE ?= trading
RELEASE ?= trading-telemetry
CHART := charts/trading-telemetry
MONITORING_NAMESPACE ?= monitoring
MONITORING_RELEASE ?= monitoring
KPS_VALUES := deploy/kind/kube-prometheus-stack-values.yaml
INGRESS_VALUES := deploy/kind/ingress-nginx-values.yaml
# Chart versions, pinned so `make kind-up` installs the same thing next month. Chosen on
# 2026-11-24: kube-prometheus-stack 87.15.1 is the newest release found in
# prometheus-community/helm-charts release notes (kube-prometheus-stack-87.15.1); ingress-nginx
# 4.14.3 (controller v1.14.3) is the newest chart whose supported-versions table in the
# ingress-nginx README lists Kubernetes 1.34, the node image pinned in kind-config.yaml.
# Override on the command line (KPS_CHART_VERSION=...); keep the node image in step.
KPS_CHART_VERSION ?= 87.15.1
INGRESS_NGINX_CHART_VERSION ?= 4.14.3
GRAFANA_HOST ?= grafana.localhost
UI_PORT ?= 8501
# Images are tagged with the chart's appVersion: the chart's default tag, so no --set needed.
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' $(CHART)/Chart.yaml)
PUBLISHER_IMAGE := trading-telemetry-publisher:$(IMAGE_TAG)
SIDECAR_IMAGE := trading-telemetry-sidecar:$(IMAGE_TAG)
OPERATOR_IMAGE := trading-telemetry-operator:$(IMAGE_TAG)
OPERATOR_DOCKERFILE := services/operator/Dockerfile
# No provenance/SBOM attestations: with them, Docker Engine 29+ (containerd image store) makes
# a multi-manifest image that `kind load docker-image` cannot import ("ctr: content digest
# ... not found", kubernetes-sigs/kind#3795).
DOCKER_BUILD := docker build --provenance=false --sbom=false
# Helm waits this long for `make deploy` (rollout of both Deployments).
DEPLOY_TIMEOUT ?= 5m
# The benchmark Job's deadline (benchmark.activeDeadlineSeconds, default from values.yaml);
# `make bench-job` sets it and gives Helm that plus BENCH_TIMEOUT_MARGIN seconds, so Helm
# reports the Job's own failure instead of timing out first.
BENCH_DEADLINE ?= $(shell sed -n 's/^  activeDeadlineSeconds: *\([0-9][0-9]*\)$$/\1/p' $(CHART)/values.yaml)
BENCH_TIMEOUT_MARGIN ?= 120

KUBECTL := kubectl --context $(KUBE_CONTEXT)
HELM := helm --kube-context $(KUBE_CONTEXT)
# The fullname the chart gives its objects (the release name contains the chart name here).
FULLNAME := $(if $(findstring trading-telemetry,$(RELEASE)),$(RELEASE),$(RELEASE)-trading-telemetry)

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

define need-cluster
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || { \
	  echo "make $@: kind cluster '$(KIND_CLUSTER)' does not exist; run 'make kind-up' first" >&2; \
	  exit 1; }
endef

.PHONY: images kind-load kind-up kind-down deploy ui grafana bench-job

images: ## build the publisher and sidecar images (and the operator's, when it has a Dockerfile)
	$(call need-tools,docker)
	$(call need-docker-engine)
	$(DOCKER_BUILD) -f services/publisher/Dockerfile -t $(PUBLISHER_IMAGE) .
	$(DOCKER_BUILD) -f services/sidecar/Dockerfile -t $(SIDECAR_IMAGE) .
	@if [ -f $(OPERATOR_DOCKERFILE) ]; then \
	  echo "$(DOCKER_BUILD) -f $(OPERATOR_DOCKERFILE) -t $(OPERATOR_IMAGE) ."; \
	  $(DOCKER_BUILD) -f $(OPERATOR_DOCKERFILE) -t $(OPERATOR_IMAGE) .; \
	fi

kind-load: ## copy the built images into the kind cluster's node
	$(call need-tools,docker kind)
	$(call need-docker-engine)
	$(call need-cluster)
	kind load docker-image --name $(KIND_CLUSTER) $(PUBLISHER_IMAGE) $(SIDECAR_IMAGE)
	@if docker image inspect $(OPERATOR_IMAGE) >/dev/null 2>&1; then \
	  echo "kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE)"; \
	  kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE); \
	fi

kind-up: ## create the kind cluster with ingress-nginx and kube-prometheus-stack
	$(call need-tools,docker kind helm kubectl)
	$(call need-docker-engine)
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster '$(KIND_CLUSTER)' exists, reusing it"; \
	else \
	  echo "kind create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 120s"; \
	  kind create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 120s; \
	fi
	helm repo add ingress-nginx https://kubernetes.github.io/ingress-nginx --force-update
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	helm repo update ingress-nginx prometheus-community
	$(HELM) upgrade --install ingress-nginx ingress-nginx/ingress-nginx \
	  $(if $(INGRESS_NGINX_CHART_VERSION),--version $(INGRESS_NGINX_CHART_VERSION)) \
	  --namespace ingress-nginx --create-namespace \
	  -f $(INGRESS_VALUES) --wait --timeout 5m
	$(HELM) upgrade --install $(MONITORING_RELEASE) prometheus-community/kube-prometheus-stack \
	  $(if $(KPS_CHART_VERSION),--version $(KPS_CHART_VERSION)) \
	  --namespace $(MONITORING_NAMESPACE) --create-namespace \
	  -f $(KPS_VALUES) --wait --timeout 10m
	@echo "cluster '$(KIND_CLUSTER)' is up; next: make images kind-load deploy"

kind-down: ## delete the kind cluster and everything in it
	$(call need-tools,kind)
	kind delete cluster --name $(KIND_CLUSTER)

deploy: ## helm upgrade --install the chart into the kind cluster
	$(call need-tools,kind helm kubectl)
	$(call need-cluster)
	$(HELM) upgrade --install $(RELEASE) $(CHART) \
	  --namespace $(NAMESPACE) --create-namespace \
	  --set networkPolicy.monitoringNamespace=$(MONITORING_NAMESPACE) \
	  --set-string serviceMonitor.additionalLabels.release=$(MONITORING_RELEASE) \
	  --wait --timeout $(DEPLOY_TIMEOUT)

ui: ## port-forward the Streamlit UI to http://localhost:8501 (UI_PORT=...)
	$(call need-tools,kind kubectl)
	$(call need-cluster)
	@echo "trading UI: http://localhost:$(UI_PORT)  (Ctrl-C stops the port-forward)"
	$(KUBECTL) --namespace $(NAMESPACE) port-forward service/$(FULLNAME)-ui $(UI_PORT):8501

grafana: ## print the Grafana URL (through the ingress) and its login
	$(call need-tools,kind kubectl)
	$(call need-cluster)
	@secret="$(MONITORING_RELEASE)-grafana"; \
	user=$$($(KUBECTL) --namespace $(MONITORING_NAMESPACE) get secret $$secret \
	    -o jsonpath='{.data.admin-user}') && [ -n "$$user" ] && \
	password=$$($(KUBECTL) --namespace $(MONITORING_NAMESPACE) get secret $$secret \
	    -o jsonpath='{.data.admin-password}') && [ -n "$$password" ] && \
	user=$$(printf '%s' "$$user" | base64 -d) && \
	password=$$(printf '%s' "$$password" | base64 -d) || { \
	  echo "make grafana: cannot read secret $$secret in namespace $(MONITORING_NAMESPACE);" \
	    "is kube-prometheus-stack installed ('make kind-up')?" >&2; exit 1; }; \
	echo "Grafana:   http://$(GRAFANA_HOST)/"; \
	echo "login:     $$user / $$password"; \
	echo "dashboard: http://$(GRAFANA_HOST)/d/trading-telemetry"

bench-job: ## run the in-cluster benchmark Job against the ZMQ Service and print its result
	$(call need-tools,kind helm kubectl)
	$(call need-cluster)
	@case "$(BENCH_DEADLINE)" in ''|*[!0-9]*) \
	  echo "make bench-job: BENCH_DEADLINE must be whole seconds, got '$(BENCH_DEADLINE)'" >&2; \
	  exit 1 ;; esac; \
	status=0; timeout=$$(( $(BENCH_DEADLINE) + $(BENCH_TIMEOUT_MARGIN) ))s; \
	echo "helm upgrade $(RELEASE) --reuse-values --set benchmark.enabled=true" \
	  "(waits up to $$timeout for the Job)"; \
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values \
	  --set benchmark.enabled=true \
	  --set benchmark.activeDeadlineSeconds=$(BENCH_DEADLINE) \
	  --wait --timeout $$timeout || status=$$?; \
	$(KUBECTL) --namespace $(NAMESPACE) logs job/$(FULLNAME)-bench --tail=50 || true; \
	echo "result row (the Job's termination message):"; \
	$(KUBECTL) --namespace $(NAMESPACE) get pods -l job-name=$(FULLNAME)-bench \
	  -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.message}' || true; \
	echo; \
	if [ $$status -ne 0 ]; then \
	  echo "make bench-job: the benchmark hook failed, so Helm marked release $(RELEASE) FAILED" \
	    "(the Deployments keep running); 'make deploy' installs a good revision again" >&2; \
	fi; \
	exit $$status
