# Benchmark: every trading-bench mode at its default size, one run id, results under
# results/<run id>/ (JSON + PNG per mode). Each mode starts its own sidecar unless
# BENCH_ARGS points it at one (--address ... --sidecar-url ...). What each mode
# measures and a reference run: docs/benchmark.md.

# Evaluated once (:=), so all five modes share one run id.
ifndef BENCH_RUN_ID
BENCH_RUN_ID := $(shell date -u +%Y%m%d-%H%M%S)
endif
BENCH_RESULTS ?= results
BENCH_ARGS ?=
BENCH := $(RUN) trading-bench --run-id $(BENCH_RUN_ID) --results-dir $(BENCH_RESULTS) $(BENCH_ARGS)

.PHONY: benchmark

benchmark: sync ## hotpath, burst, sustained, ingest, paced at default sizes -> results/<run id>/
	@$(BENCH) hotpath
	@$(BENCH) burst
	@$(BENCH) sustained
	@$(BENCH) ingest
	@$(BENCH) paced
	@echo "results: $(BENCH_RESULTS)/$(BENCH_RUN_ID)/"
