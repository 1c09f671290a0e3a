"""Benchmarks for refimpl (run as modules: python -m benchmarks.<name>)."""
