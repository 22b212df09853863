# Mutation testing: not part of `make test` (minutes per module on 2 cores). The scopes
# (module + the tests that should kill its mutants) are listed once, in scripts/mutation.py.
.PHONY: mutation

MUTATION_SCOPES ?=
mutation: sync ## mutmut per module (MUTATION_SCOPES="sidecar.metrics ..."): score + survivors
	@$(RUN) python scripts/mutation.py $(MUTATION_SCOPES) $(MUTATION_ARGS)
