"""Benchmarks behind ``dispatch bench``: each compares the product with a named peer in the same run."""
