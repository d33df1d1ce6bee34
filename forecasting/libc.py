"""glibc's heap calls, shared by the training job and the gateway: handing freed memory back to
the OS (``malloc_trim``) and capping malloc arenas (``mallopt``). ``LIBC`` is None on a C library
without them (musl, macOS), and every caller then does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util


def _find() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


LIBC = _find()


def trim() -> bool:
    """Return free heap pages to the OS now; True if glibc released any."""
    return bool(LIBC.malloc_trim(0)) if LIBC is not None else False
