"""Giving memory back to the OS after bulk work, on glibc.

A PredictStream forecasts its chunks on worker threads; numpy and pandas allocate and free tens of
megabytes per chunk there. glibc keeps freed memory in per-thread arenas (up to 8 per core) and
returns little of it to the OS, so after a burst of streams (or 250 cancelled ones) the gateway's
RSS stays at its peak although nothing holds the memory. Two remedies, both measured in
`bench/fairness_bench.py` (docs/benchmarks.md):

- `limit_arenas` caps the arenas at start-up (`mallopt(M_ARENA_MAX)`, what `MALLOC_ARENA_MAX`
  does), so freed blocks are reused across threads instead of spread over many arenas;
- `Releaser.stream_ended` asks, once no stream has ended for QUIET_S seconds, for a full
  garbage collection (cancelled streams leave reference cycles through their exceptions'
  tracebacks that hold request messages and arrays) and a `malloc_trim(0)`, which hands the
  free pages of every arena back to the OS; twice more over the next 6 s, for the chunks that
  were still running when their stream ended. One background thread; nothing runs while streams
  keep ending.

On a C library without these calls (musl, macOS) both do nothing.
"""

from __future__ import annotations

import gc
import logging
import threading

from forecasting.libc import LIBC as _LIBC
from forecasting.libc import trim

log = logging.getLogger("forecast_gateway.memory")

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2  # the gateway's cap: fewer arenas, less memory parked in them (measured)
QUIET_S = 1.0
AGAIN_AFTER_S = (2.0, 4.0, 0.0)  # pauses between the releases that follow a quiet period


def limit_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas at `count` (call before worker threads start); True if applied."""
    if _LIBC is None or count <= 0:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, count))


class Releaser:
    """Trims once bulk work has been quiet for QUIET_S seconds (one daemon thread)."""

    def __init__(self, quiet_s: float = QUIET_S):
        self._quiet_s = quiet_s
        self._ended = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def stream_ended(self) -> None:
        """A bulk call ended (finished, failed or cancelled): trim after the quiet period."""
        if _LIBC is None or self._closed:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="memory-release",
                                                daemon=True)
                self._thread.start()
        self._ended.set()

    def close(self) -> None:
        """Stop the thread (it exits at its next wake-up)."""
        self._closed = True
        self._ended.set()

    def _run(self) -> None:
        while True:
            self._ended.wait()
            if self._closed:
                return
            self._ended.clear()
            while self._ended.wait(self._quiet_s):  # more streams ended: wait until quiet
                if self._closed:
                    return
                self._ended.clear()
            # Chunks already running when their stream was cancelled, and the served-forecast
            # recorder's backlog, free their memory over the next seconds: release again later,
            # unless more streams end (then the cycle starts over).
            for pause in AGAIN_AFTER_S:
                self._release()
                if self._ended.wait(pause) or self._closed:
                    break

    @staticmethod
    def _release() -> None:
        # Cancelled streams leave reference cycles (CancelledError -> traceback -> frames ->
        # their request messages and arrays) that only a full collection frees.
        collected = gc.collect()
        released = trim()
        log.debug("memory released after bulk streams",
                  extra={"fields": {"gc_objects": collected, "trimmed": released}})
