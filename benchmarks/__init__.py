"""Benchmarks: ``python -m benchmarks.bench_methods`` (see benchmarks/README.md)."""
