"""Benchmarks (pytest-benchmark), opt-in: see ``tests/bench/conftest.py``."""
