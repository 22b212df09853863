"""Sidecar: pulls trade events over ZeroMQ, validates them, serves Prometheus metrics."""
