# Shared by mk/kubernetes.mk and mk/operator.mk (and included by both, so either file also
# works alone with `make -f`): the release, its namespace and the chart's fullname rule.
ifndef TT_COMMON_MK
TT_COMMON_MK := 1

NAMESPACE ?= trading
RELEASE ?= trading-telemetry
CHART := charts/trading-telemetry
# The chart's fullname rule (_helpers.tpl "trading-telemetry.fullname"): the release name
# alone when it contains the chart name, else "<release>-trading-telemetry".
FULLNAME := $(if $(findstring trading-telemetry,$(RELEASE)),$(RELEASE),$(RELEASE)-trading-telemetry)
# The contract's ports and the chart's replica-0 Service (telemetry_contract.ports; Make
# cannot import Python, so tests/unit/contract/test_ports.py checks they agree).
SIDECAR_HTTP_PORT := 8001
UI_SERVICE_PORT := 8501
BENCH_SERVICE := $(FULLNAME)-sidecar-bench
# Images are tagged with the chart's appVersion: the chart's default tag, so no --set needed.
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' $(CHART)/Chart.yaml)
PUBLISHER_IMAGE := trading-telemetry-publisher:$(IMAGE_TAG)
SIDECAR_IMAGE := trading-telemetry-sidecar:$(IMAGE_TAG)
OPERATOR_IMAGE := trading-telemetry-operator:$(IMAGE_TAG)
BENCH_IMAGE := trading-telemetry-bench:$(IMAGE_TAG)

endif
