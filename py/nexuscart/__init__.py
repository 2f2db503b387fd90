"""NexusCart: a high-concurrency e-commerce backend (Python edge, Rust core)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
