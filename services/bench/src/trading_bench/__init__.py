"""The publish-cost benchmark: the project's client against the alternatives, in one run."""
