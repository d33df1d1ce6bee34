"""More than one core for one large forecast, without taking the cores from small ones.

Serving pins each booster to one thread, so one large request (a Predict or Forecast of
every series, an export) used one core while the others idled. ``WideForecasts`` lends such
a request helper threads: its series are split into ``threads`` groups of neighbours, each
forecast day by day on its own thread (``forecasting.models.recursion``). Below
``min_series`` series (rows per forecast day) a request stays on its own thread: two
``inplace_predict`` calls a day cost more than they save there (docs/benchmarks.md, "The
bulk predict beside its XGBoost floor", measured the crossover). At most ``slots`` requests
are wide at a time, and a request that finds no free slot runs on one thread at once rather
than wait, so the helper threads never outnumber ``slots * (threads - 1)`` and small calls
keep the threads (and cores) they had.

Split by series on Python threads rather than XGBoost's own ``nthread``: XGBoost's OpenMP
threads spin between the days' calls, and measured 1.4-4x slower than one thread at a few
hundred series per day on two shared cores, where the split was already faster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager


class WideForecasts:
    """Helper threads that large forecasts borrow (module docstring)."""

    def __init__(self, threads: int, min_series: int, slots: int = 1):
        if threads < 1 or min_series < 1 or slots < 1:
            raise ValueError("threads, min_series and slots must be at least 1")
        self.threads, self.min_series, self.slots = threads, min_series, slots
        self._free = threading.BoundedSemaphore(slots)
        self._pool = (ThreadPoolExecutor(slots * (threads - 1), thread_name_prefix="predict-wide")
                      if threads > 1 else None)

    @contextmanager
    def lend(self, n_series: int) -> Iterator[tuple[int, Executor | None]]:
        """``(threads, pool)`` for a forecast of ``n_series`` series: the helpers while a
        slot is free and the request is large enough, else ``(1, None)``."""
        pool = self._pool
        if pool is None or n_series < self.min_series or not self._free.acquire(blocking=False):
            yield 1, None
            return
        try:
            yield self.threads, pool
        finally:
            self._free.release()

    def close(self) -> None:
        """Stop the helper threads once the forecasts using them end; later forecasts run on
        their own thread."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
