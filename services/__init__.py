"""Downstream services: one folder each (handlers, entrypoint `__main__.py`, bootstrap)."""
