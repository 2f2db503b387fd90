"""Child processes that must not outlive their parent: the development supervisor's
(devtools/proc.py) and the recommendation service's training child."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any, Final

_PR_SET_PDEATHSIG: Final = 1
_libc_name = ctypes.util.find_library("c")
_prctl: Any = (
    getattr(ctypes.CDLL(_libc_name, use_errno=True), "prctl", None) if _libc_name else None
)


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """In a child, before exec (a preexec_fn): if the parent is killed with SIGKILL (no
    chance to stop its children), the kernel sends the child ``sig``. With ``parent`` (its
    pid, read before the fork), a parent already gone by the time the kernel is asked is
    caught too: the child exits. Only a prctl resolved before the fork: nothing here takes
    a lock. Linux only; elsewhere nothing happens."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)
