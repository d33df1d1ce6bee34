"""Records the forecasts the gateway serves, for live accuracy, off the prediction path.

`record` only puts references to the request's arrays on a bounded queue (a full queue drops
the batch and counts it), so predictions never wait for SQLite. A background thread keeps a
stable sample of series per retailer (at most `max_series` of the model's series, chosen by a
hash of the series key, so the same series are always kept), adds each row's horizon step and
the seasonal-naive forecast from the same origin, and writes them to the monitoring store under
the version that trained the model (an actuals update publishes a new version of the same
model; its forecasts count for the model it updates).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd

from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.monitoring_store import MonitoringStore
from forecasting.artifact import SeriesTable, load_history
from forecasting.monitoring.actuals import trained_version
from forecasting.monitoring.live_accuracy import naive_forecasts

log = logging.getLogger("forecast_gateway.dataplane.served")

QUEUE_BATCHES = 256
# The queue holds the request's own arrays: bounded by rows too, or a burst of bulk streams
# parks hundreds of megabytes here (256 chunks of 20,000 rows held 65 MB after the streams ended).
QUEUE_ROWS = 200_000
HISTORY_CACHE = 16
_HASH_SPACE = 1 << 32


class ServedRecorder:
    """Background recording of served forecasts; see the module docstring."""

    def __init__(self, store: MonitoringStore, max_series: int,
                 on_drop: Callable[[], None] = lambda: None):
        self._store = store
        self._max_series = max_series
        self._on_drop = on_drop
        self._queue: queue.Queue = queue.Queue(QUEUE_BATCHES)
        self._queued_rows = 0
        self._rows_lock = threading.Lock()
        self._tables: OrderedDict[tuple[str, str], tuple[SeriesTable, str]] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="served-recorder", daemon=True)
        self._thread.start()

    def record(self, ref: ModelRef, rows: RowColumns, values: np.ndarray) -> None:
        """Queue one answered batch (never blocks)."""
        if self._max_series <= 0 or len(values) == 0:
            return
        with self._rows_lock:
            if self._queued_rows + len(values) > QUEUE_ROWS:
                self._on_drop()
                return
            self._queued_rows += len(values)
        try:
            self._queue.put_nowait((ref, rows, values))
        except queue.Full:
            self._release(len(values))
            self._on_drop()

    def _release(self, rows: int) -> None:
        with self._rows_lock:
            self._queued_rows -= rows

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything queued so far is written (actuals scoring calls this)."""
        done = threading.Event()
        self._queue.put((None, None, done), timeout=timeout_s)
        done.wait(timeout_s)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put((None, None, None))
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            ref, rows, values = self._queue.get()
            if ref is None:
                if values is None:
                    return
                values.set()
                continue
            try:
                self._write(ref, rows, values)
            except Exception:
                log.exception("recording served forecasts failed",
                              extra={"fields": {"retailer": ref.retailer, "version": ref.version}})
            finally:
                self._release(len(values))
                del rows, values  # not held while the queue is empty

    def _table(self, ref: ModelRef) -> tuple[SeriesTable, str]:
        """The version's history tail and the version that trained it."""
        key = (ref.retailer, ref.version)
        found = self._tables.get(key)
        if found is None:
            meta = json.loads((ref.path / "artifact.json").read_text())
            found = (load_history(ref.path / "history.parquet"),
                     trained_version(meta, ref.version))
            self._tables[key] = found
            while len(self._tables) > HISTORY_CACHE:
                self._tables.popitem(last=False)
        self._tables.move_to_end(key)
        return found

    def _write(self, ref: ModelRef, rows: RowColumns, values: np.ndarray) -> None:
        table, trained = self._table(ref)
        store = np.asarray(rows.store_nbr)
        family = np.asarray(rows.family).astype(str)
        keep = sampled(store, family, self._max_series / max(len(table.store_nbr), 1))
        if not keep.any():
            return
        day = np.asarray(rows.day)[keep]
        step, naive = naive_forecasts(table, store[keep], family[keep], day)
        frame = pd.DataFrame({"store_nbr": store[keep], "family": family[keep], "day": day,
                              "step": step, "forecast": np.clip(values[keep], 0, None),
                              "naive": naive})
        self._store.add_served(ref.retailer, trained, frame[frame["step"] >= 1])


def sampled(store: np.ndarray, family: np.ndarray, fraction: float) -> np.ndarray:
    """Rows of the series in a stable `fraction` sample (by a hash of the series key)."""
    if fraction >= 1:
        return np.ones(len(store), dtype=bool)
    keys = pd.Series(store.astype(str)) + "|" + pd.Series(family)
    hashed = pd.util.hash_array(keys.to_numpy(dtype=object)) % _HASH_SPACE
    return hashed < fraction * _HASH_SPACE
