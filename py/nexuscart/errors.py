"""Errors raised by NexusCart's compiled core.

The classes are created in Rust (``nexuscart._core``) and re-exported here so that
callers never import the private extension module::

    NexusCartError(Exception)
    └── InvalidArgument(NexusCartError, ValueError)
        └── OutOfRange(InvalidArgument)
"""

from nexuscart._core import InvalidArgument, NexusCartError, OutOfRange

__all__ = ["InvalidArgument", "NexusCartError", "OutOfRange"]
