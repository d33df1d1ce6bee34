"""Records the forecasts the gateway serves, for live accuracy, off the prediction path.

`record` only puts references to the request's arrays on a bounded queue (a full queue drops
the batch and counts it), so predictions never wait for SQLite. A background thread keeps a
stable sample of series per retailer (at most `max_series` of the model's series, chosen by a
hash of the series key, so the same series are always kept), adds each row's horizon step and
the seasonal-naive forecast from the same origin, and writes them to the monitoring store under
the version that trained the model (an actuals update publishes a new version of the same
model; its forecasts count for the model it updates). It remembers the cells it wrote, so a
cell served again costs a vectorised lookup, not a write (the store keeps the first forecast
per cell anyway).
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
from forecast_gateway.store.monitoring_store import MonitoringStore
from forecasting.artifact import load_history
from forecasting.monitoring.actuals import trained_version
from forecasting.monitoring.live_accuracy import naive_forecasts

log = logging.getLogger("forecast_gateway.dataplane.served")

QUEUE_BATCHES = 256
# The queue holds the request's own arrays: bounded by rows too, or a burst of bulk streams
# parks hundreds of megabytes here (256 chunks of 20,000 rows held 65 MB after the streams ended).
QUEUE_ROWS = 200_000
HISTORY_CACHE = 16
#: Horizon steps per series in a cell key (series * STEP_SPACE + step).
STEP_SPACE = 4096
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
        self._indexes: OrderedDict[tuple[str, str], VersionIndex] = OrderedDict()
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

    def _index(self, ref: ModelRef) -> VersionIndex:
        key = (ref.retailer, ref.version)
        found = self._indexes.get(key)
        if found is None:
            found = VersionIndex(ref, self._max_series)
            self._indexes[key] = found
            while len(self._indexes) > HISTORY_CACHE:
                self._indexes.popitem(last=False)
        self._indexes.move_to_end(key)
        return found

    def _write(self, ref: ModelRef, rows: RowColumns, values: np.ndarray) -> None:
        index = self._index(ref)
        new = index.new_cells(np.asarray(rows.store_nbr), np.asarray(rows.family),
                              np.asarray(rows.day))
        if not len(new):
            return
        store = np.asarray(rows.store_nbr)[new]
        family = np.asarray(rows.family)[new].astype(str)
        day = np.asarray(rows.day)[new]
        step, naive = naive_forecasts(index.table, store, family, day)
        frame = pd.DataFrame({"store_nbr": store, "family": family, "day": day, "step": step,
                              "forecast": np.clip(values[new], 0, None), "naive": naive})
        self._store.add_served(ref.retailer, index.trained, frame)


class VersionIndex:
    """One version's series, the stable sample of them that is recorded, and the (series, step)
    cells already written, so a batch costs a few vectorised lookups and only cells never seen
    reach SQLite (a bulk stream that repeats cells writes nothing after the first time)."""

    def __init__(self, ref: ModelRef, max_series: int):
        meta = json.loads((ref.path / "artifact.json").read_text())
        self.trained = trained_version(meta, ref.version)
        self.table = load_history(ref.path / "history.parquet")
        self.origin = int(np.datetime64(self.table.last_date, "D").astype(np.int64))
        zero = json.loads((ref.path / "zero_series.json").read_text()) \
            if (ref.path / "zero_series.json").exists() else []
        stores = np.concatenate([self.table.store_nbr.astype(np.int64),
                                 np.array([int(s) for s, _ in zero], dtype=np.int64)])
        families = np.concatenate([self.table.family.astype(str),
                                   np.array([str(f) for _, f in zero], dtype=str)])
        self.families = np.unique(families)          # sorted: codes by binary search
        self.lookup = np.full((int(stores.max(initial=0)) + 1, len(self.families)), -1, np.int64)
        self.lookup[stores, np.searchsorted(self.families, families)] = np.arange(len(stores))
        fraction = max_series / max(len(stores), 1)
        self.keep = sampled(stores, families, fraction)
        self.seen = np.zeros(0, dtype=np.int64)

    def new_cells(self, store: np.ndarray, family: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Positions of the batch's rows that are sampled, after the origin and not yet written;
        marks them written."""
        family = np.asarray(family, dtype=str)
        fam = np.minimum(np.searchsorted(self.families, family), len(self.families) - 1)
        fam = np.where(self.families[fam] == family, fam, -1) if len(self.families) else \
            np.full(len(family), -1)
        store = store.astype(np.int64)
        inside = (store >= 0) & (store < self.lookup.shape[0]) & (fam >= 0)
        series = np.full(len(store), -1, dtype=np.int64)
        series[inside] = self.lookup[store[inside], fam[inside]]
        step = day.astype(np.int64) - self.origin
        wanted = (series >= 0) & (step >= 1) & (step < STEP_SPACE)
        wanted[wanted] = self.keep[series[wanted]]
        positions = np.flatnonzero(wanted)
        keys = series[positions] * STEP_SPACE + step[positions]
        at = np.searchsorted(self.seen, keys)        # seen is sorted
        hit = at < len(self.seen)
        hit[hit] = self.seen[at[hit]] == keys[hit]
        if hit.all():
            return np.zeros(0, dtype=np.int64)
        keys, first = np.unique(keys[~hit], return_index=True)
        self.seen = np.union1d(self.seen, keys)
        return np.sort(positions[~hit][first])


def sampled(store: np.ndarray, family: np.ndarray, fraction: float) -> np.ndarray:
    """Rows of the series in a stable `fraction` sample (by a hash of the series key)."""
    if fraction >= 1:
        return np.ones(len(store), dtype=bool)
    keys = pd.Series(store.astype(str)) + "|" + pd.Series(family)
    hashed = pd.util.hash_array(keys.to_numpy(dtype=object)) % _HASH_SPACE
    return hashed < fraction * _HASH_SPACE
