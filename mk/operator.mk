# LatencyBenchmark operator (kopf) outside the cluster, against the current kubeconfig
# context: the operator runs here, the benchmark Jobs it creates run in the cluster.
# Walk-through: docs/operator.md.
# BENCH_IMAGE comes from mk/common.mk: the Jobs run the very image `make images kind-load` put
# into the cluster, not a :latest that was never built.
# operator-crd forces server-side apply conflicts because a CRD that Helm installed is owned
# by Helm's field manager; this file is the same CRD, so taking the fields over is right.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

OPERATOR_CRD := $(CHART)/crds/latencybenchmarks.yaml
OPERATOR_SAMPLE ?= examples/latencybenchmark.yaml
# kopf's liveness endpoint when run locally (the chart's Deployment uses 0.0.0.0:8080).
OPERATOR_LIVENESS ?= http://127.0.0.1:8080/healthz

# Fail at once, with the fix, when kubectl or a reachable current context is missing.
define need-kube-context
	@command -v kubectl >/dev/null 2>&1 || { \
	  echo "make $@: kubectl is not on PATH (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }
	@context="$$(kubectl config current-context 2>/dev/null)" || { \
	  echo "make $@: no current kubeconfig context (set KUBECONFIG or run 'kubectl config use-context ...')" >&2; \
	  exit 1; }; \
	kubectl version --request-timeout=5s >/dev/null 2>&1 || { \
	  echo "make $@: the API server of context '$$context' is not reachable" >&2; exit 1; }; \
	echo "kubeconfig context: $$context, namespace: $(NAMESPACE)"
endef

.PHONY: operator-dev operator-crd operator-sample operator-status

operator-dev: sync ## run the LatencyBenchmark operator locally (kopf run) against the current kubeconfig
	$(call need-kube-context)
	@kubectl get crd latencybenchmarks.telemetry.trading-telemetry.io >/dev/null 2>&1 || { \
	  echo "make $@: the LatencyBenchmark CRD is not installed; run 'make operator-crd' (or install the chart)" >&2; \
	  exit 1; }
	TT_OPERATOR_BENCH_IMAGE=$(BENCH_IMAGE) \
	TT_OPERATOR_INSTANCE=$(RELEASE) \
	TT_OPERATOR_DEFAULT_SERVICE=$(BENCH_SERVICE) \
	TT_OPERATOR_SIDECAR_URL=http://$(BENCH_SERVICE):$(SIDECAR_HTTP_PORT) \
	$(RUN) kopf run --standalone --namespace $(NAMESPACE) --liveness=$(OPERATOR_LIVENESS) \
	  -m trading_operator.handlers

operator-crd: ## install or update the LatencyBenchmark CRD in the current kubeconfig context
	$(call need-kube-context)
	kubectl apply --server-side --force-conflicts -f $(OPERATOR_CRD)
	kubectl wait --for=condition=Established --timeout=60s crd/latencybenchmarks.telemetry.trading-telemetry.io

operator-sample: ## apply examples/latencybenchmark.yaml (OPERATOR_SAMPLE=...) and watch it
	$(call need-kube-context)
	kubectl apply -n $(NAMESPACE) -f $(OPERATOR_SAMPLE)
	kubectl get latencybenchmarks -n $(NAMESPACE) --watch --request-timeout=10m

operator-status: ## list LatencyBenchmarks with every column
	$(call need-kube-context)
	kubectl get latencybenchmarks -n $(NAMESPACE) -o wide
