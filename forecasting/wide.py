"""More than one core for one large forecast, without taking the cores from small ones.

Serving pins each booster to one thread, so one large request (a Predict or Forecast of
every series, an export) used one core while the others idled. ``WideForecasts`` lends such
a request helper threads: its series are split into ``threads`` groups of neighbours, each
forecast day by day on its own thread (``forecasting.models.recursion``). A request is lent
the helpers only when it is the only forecast in flight and has at least ``min_series`` series
(rows per forecast day): with other forecasts running the cores are taken already, and below
``min_series`` two ``inplace_predict`` calls a day cost more than they save (docs/benchmarks.md,
"The bulk predict beside its XGBoost floor", measures the crossover). So under bulk streams
every chunk stays on its own thread, a unary call that arrives during a wide forecast has its
own thread as before, and at most ``threads - 1`` helpers ever run.

Split by series on Python threads rather than XGBoost's own ``nthread``: XGBoost's OpenMP
threads spin between the days' calls: with ``nthread=2`` a forecast of 256 to 1,716 series x 16
days took 1.4-4x as long as on one thread (two shared cores), the split 0.8-1.0x.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager


class WideForecasts:
    """Helper threads that large forecasts borrow (module docstring)."""

    def __init__(self, threads: int, min_series: int):
        if threads < 1 or min_series < 1:
            raise ValueError("threads and min_series must be at least 1")
        self.threads, self.min_series = threads, min_series
        self._lock = threading.Lock()
        self._in_flight = 0
        self._pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="predict-wide")
                      if threads > 1 else None)

    @contextmanager
    def lend(self, n_series: int) -> Iterator[tuple[int, Executor | None]]:
        """``(threads, pool)`` for a forecast of ``n_series`` series, counted in flight while
        the context lasts: the helpers when it is alone and large enough, else ``(1, None)``."""
        with self._lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            pool = self._pool
            if pool is None or n_series < self.min_series or not alone:
                yield 1, None
            else:
                yield self.threads, pool
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Stop the helper threads once the forecasts using them end; later forecasts run on
        their own thread."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
