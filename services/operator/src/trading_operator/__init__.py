"""LatencyBenchmark operator: runs the in-cluster benchmark Job, reports results in status."""
