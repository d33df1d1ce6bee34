"""``refit_method=refresh``: the same trees, every leaf value recomputed on the refit's rows.

XGBoost's own ``refresh`` updater does it, tree after tree, in C++: a leaf becomes
``-eta * G / (H + lambda)`` (``alpha`` applied to ``G``) over the rows it holds, with the
gradients of the squared error at the refreshed trees before it; a leaf no row reaches keeps
its value. It needs a float ``DMatrix`` of the rows (8 bytes per feature and row), which
``refresh_rows`` bounds (4M rows: ~350 MB).

This replaced a leaf refresh of our own (leaf indices from ``predict(pred_leaf=True)`` a chunk
at a time, sums in numpy, leaf values written back through the model's JSON). Same leaf
values, but the JSON of a large model became Python objects for a moment: at 59.2M rows (1,000
trees whose categorical splits list up to 3,049 categories) that was the job's 14.0 GB peak
(docs/scaling.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import xgboost as xgb

Chunk = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]   # features, label, weight


def refresh_leaves(booster: xgb.Booster, chunks: Sequence[Chunk] | Iterable[Chunk],
                   params: dict, to_dmatrix: Callable[[np.ndarray], xgb.DMatrix] = xgb.DMatrix,
                   callbacks: Sequence[xgb.callback.TrainingCallback] = ()) -> xgb.Booster:
    """A copy of ``booster`` with every leaf value recomputed on the rows of ``chunks``.

    ``params`` are the booster's training parameters (``eta``, ``lambda``, ``alpha``,
    ``nthread``...). ``chunks`` yields ``(features, label, weight)``; its ``n_rows`` attribute,
    when present, lets the rows be gathered into one preallocated array instead of a list of
    chunks and a copy. ``to_dmatrix`` makes the features a ``DMatrix`` (feature names and
    categorical types, as the booster was trained on)."""
    X, label, weight = _gather(chunks)
    matrix = to_dmatrix(X)
    del X                                      # the DMatrix holds its own copy
    matrix.set_label(label)
    if weight is not None:
        matrix.set_weight(weight)
    update = {k: v for k, v in params.items() if k != "tree_method"}
    update.update(process_type="update", updater="refresh", refresh_leaf=True)
    with warnings.catch_warnings():            # "updater ... tree_method will be ignored"
        warnings.filterwarnings("ignore", message=".*manually specified the `updater`")
        return xgb.train(update, matrix, num_boost_round=booster.num_boosted_rounds(),
                         xgb_model=booster, verbose_eval=False, callbacks=list(callbacks))


def _gather(chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The chunks' rows as one features array, labels and weights (None if no chunk has)."""
    n = getattr(chunks, "n_rows", None)
    if n is None:
        chunks = list(chunks)
        n = sum(len(y) for _, y, _ in chunks)
    X = label = weight = None
    at = 0
    for x, y, w in chunks:
        if X is None:
            X = np.empty((n, x.shape[1]), dtype=np.float32)
            label = np.empty(n, dtype=np.float32)
        m = len(y)
        X[at:at + m], label[at:at + m] = x, y
        if w is not None:
            if weight is None:
                weight = np.ones(n, dtype=np.float32)
            weight[at:at + m] = w
        at += m
    if X is None or at != n:
        raise ValueError(f"the chunks held {at} rows, expected {n}")
    return X, label, weight
