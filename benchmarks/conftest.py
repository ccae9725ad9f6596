"""Benchmarks run with pytest-benchmark; `make test` runs each once as a smoke test (--benchmark-disable).

Full runs: `.venv/bin/pytest benchmarks/ --benchmark-only --benchmark-group-by=group` (see RESULTS.md).
"""
