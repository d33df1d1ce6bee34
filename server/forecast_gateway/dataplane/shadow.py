"""Shadow predictions: the version in shadow forecasts the live model's requests, off the
prediction path, and its forecasts are recorded like the live model's.

`offer` is what the predict path calls after the live model answered: two dictionary reads,
then the request's arrays go on a bounded queue (bounded by batches and by rows, as the served
recorder's; a full queue drops the batch and counts it), so a request never waits for the
challenger. One background thread keeps only the rows the recorder would keep (the recorder's
stable sample of series, cells not seen before; every row of such a series, so the series'
known promotions stay in the request), forecasts them with the backend's own `predict` (the
local, docker and SageMaker backends alike) and hands them to the same `ServedRecorder`, which
records them under the challenger's version with the same bounds. A request that names a
version is not shadowed: only the live model's answers are compared.

The thread keeps to a duty cycle: after a batch that took t seconds it pauses t x (1 /
`BUSY_FRACTION` - 1) (at most `MAX_PAUSE_S`), so on the local backend, where the challenger
forecasts on the gateway's own cores, it takes at most that share of one core from the live
path; batches offered meanwhile queue or drop. A dropped batch loses nothing for good: its cells
were not marked recorded, so the next request for them is forecast.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from forecast_gateway.backends.base import Backend
from forecast_gateway.dataplane.served import HISTORY_CACHE, ServedRecorder, VersionIndex
from forecast_gateway.dataplane.state import LivePointers
from forecast_gateway.domain import ModelRef, RowColumns

log = logging.getLogger("forecast_gateway.dataplane.shadow")

QUEUE_BATCHES = 64
QUEUE_ROWS = 200_000
#: The share of the thread's wall time spent forecasting, at most.
BUSY_FRACTION = 0.25
MAX_PAUSE_S = 5.0


class ShadowPredictor:
    """The background shadow forecaster; see the module docstring. `pointers` (retailer -> the
    version in shadow) is kept by `ShadowTrials`."""

    def __init__(self, backend: Backend, recorder: ServedRecorder, live: LivePointers,
                 max_series: int, on_drop: Callable[[], None] = lambda: None,
                 on_rows: Callable[[str, int], None] = lambda retailer, n: None):
        self.pointers: dict[str, ModelRef] = {}
        self._backend, self._recorder, self._live = backend, recorder, live
        self._max_series = max_series
        self._on_drop, self._on_rows = on_drop, on_rows
        self._queue: queue.Queue = queue.Queue(QUEUE_BATCHES)
        self._queued_rows = 0
        self._rows_lock = threading.Lock()
        self._indexes: OrderedDict[tuple[str, str], VersionIndex] = OrderedDict()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-predictor", daemon=True)
        self._thread.start()

    def offer(self, ref: ModelRef, rows: RowColumns) -> None:
        """After the live model `ref` answered `rows`: queue them for the version in shadow
        (never blocks; nothing happens without one)."""
        shadow = self.pointers.get(ref.retailer)
        if shadow is None or self._max_series <= 0 or not len(rows):
            return
        live = self._live.get(ref.retailer)
        if live is None or live.path != ref.path or shadow.path == ref.path:
            return
        with self._rows_lock:
            if self._queued_rows + len(rows) > QUEUE_ROWS:
                self._on_drop()
                return
            self._queued_rows += len(rows)
        try:
            self._queue.put_nowait((shadow, rows))
        except queue.Full:
            self._release(len(rows))
            self._on_drop()

    def _release(self, rows: int) -> None:
        with self._rows_lock:
            self._queued_rows -= rows

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued so far is forecast and handed to the recorder (an
        actuals upload calls this before scoring)."""
        done = threading.Event()
        self._queue.put((None, done), timeout=timeout_s)
        done.wait(timeout_s)

    def close(self) -> None:
        """Forecast what is queued, then stop the thread."""
        self._stop.set()
        self._queue.put((None, None))
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            shadow, rows = self._queue.get()
            if shadow is None:
                if rows is None:
                    return
                rows.set()
                continue
            started = time.monotonic()
            try:
                if self._forecast(shadow, rows) and not self._stop.is_set():
                    busy = time.monotonic() - started
                    self._stop.wait(min(busy * (1 / BUSY_FRACTION - 1), MAX_PAUSE_S))
            except Exception:
                log.exception("a shadow forecast failed", extra={"fields": {
                    "retailer": shadow.retailer, "model_version": shadow.version}})
            finally:
                self._release(len(rows))
                del rows

    def _index(self, ref: ModelRef) -> VersionIndex:
        key = (ref.retailer, ref.version)
        found = self._indexes.get(key)
        if found is None:
            found = self._indexes[key] = VersionIndex(ref, self._max_series)
            while len(self._indexes) > HISTORY_CACHE:
                self._indexes.popitem(last=False)
        self._indexes.move_to_end(key)
        return found

    def _forecast(self, shadow: ModelRef, rows: RowColumns) -> bool:
        """Forecast and record the rows the recorder would keep; False when there were none."""
        store = np.asarray(rows.store_nbr).astype(np.int64)
        family = np.asarray(rows.family).astype(str)
        new = self._index(shadow).new_cells(store, family, np.asarray(rows.day))
        if not len(new):
            return False    # nothing the recorder would keep: no forecast at all
        families, code = np.unique(family, return_inverse=True)
        series = store * len(families) + code
        keep = np.isin(series, series[new])
        picked = RowColumns(
            day=np.asarray(rows.day)[keep], store_nbr=np.asarray(rows.store_nbr)[keep],
            family=np.asarray(rows.family)[keep],
            onpromotion=None if rows.onpromotion is None else np.asarray(rows.onpromotion)[keep])
        values = self._backend.predict(shadow, picked)
        if values.shape != (len(picked),):
            raise RuntimeError(f"backend returned {values.shape} forecasts for {len(picked)} rows")
        self._on_rows(shadow.retailer, len(picked))
        self._recorder.record(shadow, picked, values)
        return True
