"""Numba kernels: arrays in, arrays out (see each module's docstring for the array conventions)."""
