"""Errors raised by NexusCart's compiled core.

The classes are created in Rust (``nexuscart._core``) and re-exported here so that
callers never import the private extension module::

    NexusCartError(Exception)
    ├── InvalidArgument(NexusCartError, ValueError)
    │   └── OutOfRange(InvalidArgument)
    └── AuthError(NexusCartError)       # a rejected buyer token; str(exc) is the reason
"""

from nexuscart._core import AuthError, InvalidArgument, NexusCartError, OutOfRange

__all__ = ["AuthError", "InvalidArgument", "NexusCartError", "OutOfRange"]
