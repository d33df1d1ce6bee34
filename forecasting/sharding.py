"""Shards of a dataset for training on several instances: whole series per file, balanced by
rows, named ``part-00000.parquet``, ``part-00001.parquet``, ... (docs/scaling.md).

A series is never cut across files, because each host cleans and featurizes its own series
(``forecasting.distributed``). Series go largest first to the shard with the fewest rows so far
(longest-processing-time first: no shard ends more than one series above the mean). The same
series map to the same shard number in every split (``assign`` is computed once, on all rows),
so a host that takes shard ``i`` of the train and validation channels holds whole series.
"""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("date", "store_nbr", "family", "sales", "onpromotion")


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def assign(frame: pd.DataFrame, shards: int) -> np.ndarray:
    """Each row's shard number (0..shards-1), whole series per shard, balanced by rows."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    keys = pd.MultiIndex.from_arrays([frame["store_nbr"].to_numpy(),
                                      frame["family"].astype(str).to_numpy()])
    codes, uniques = pd.factorize(keys, sort=True)
    rows = np.bincount(codes, minlength=len(uniques))
    of_series = np.zeros(len(uniques), dtype=np.int64)
    heap = [(0, i) for i in range(shards)]
    for s in np.argsort(-rows, kind="stable"):      # largest series first
        load, i = heapq.heappop(heap)
        of_series[s] = i
        heapq.heappush(heap, (load + int(rows[s]), i))
    return of_series[codes]


def write_shards(frame: pd.DataFrame, shard: np.ndarray, shards: int, directory: Path
                 ) -> list[dict]:
    """``frame``'s rows into ``directory/part-NNNNN.parquet`` by ``shard`` (``assign``); every
    shard file is written, even an empty one. Returns the rows and series per shard."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(shards):
        rows = frame.loc[shard == i, list(COLUMNS)].reset_index(drop=True)
        rows["family"] = rows["family"].astype(str)
        rows.to_parquet(directory / shard_name(i), index=False)
        out.append({"file": shard_name(i), "rows": len(rows),
                    "series": int(rows.groupby(["store_nbr", "family"]).ngroups)})
    return out
