"""Instant-delivery dispatch and routing engine."""

__version__ = "0.1.0"
