"""``refit_method=refresh``: the same trees, every leaf value recomputed on all days.

XGBoost's own ``refresh`` updater needs a float ``DMatrix`` of every row (8 bytes per feature and
row), and its leaf prediction on a ``QuantileDMatrix`` rebuilds those floats on every call: at
15M rows about 3 s and 1.4 GB per call, once per tree. Here the leaf each row falls in is read
from the feature rows a chunk at a time, for a batch of trees per pass over the data, and kept
as a small per-tree leaf number (one byte per row and tree for trees of up to 256 leaves).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import xgboost as xgb

LEAF_BYTES_PER_ROW = 32     # leaf numbers held at a time: 32 trees a pass for up to 256 leaves

Chunk = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]   # features, label, weight


def refresh_leaves(booster: xgb.Booster, chunks: Sequence[Chunk] | Iterable[Chunk], hp,
                   to_dmatrix=None, trees_per_pass: int | None = None) -> xgb.Booster:
    """The same trees with every leaf value recomputed on the rows of ``chunks``, tree after
    tree, as XGBoost's ``refresh`` updater does (``refresh_leaf``): a leaf becomes
    ``-eta * G / (H + lambda)`` over the rows it holds, with the gradients of the squared error
    at the refreshed trees before it. A leaf no row reaches keeps its value.

    ``chunks`` is iterated once per pass (it must be re-iterable); its ``n_rows`` attribute,
    when present, saves counting the rows. ``to_dmatrix`` makes each chunk's features a
    ``DMatrix`` (feature names and types for categorical splits)."""
    to_dmatrix = to_dmatrix or xgb.DMatrix
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    trees = learner["gradient_booster"]["model"]["trees"]
    leaf_nodes = [np.flatnonzero(np.asarray(t["left_children"]) == -1) for t in trees]
    most = max((len(nodes) for nodes in leaf_nodes), default=1)
    dtype = np.dtype(np.uint8 if most <= 1 << 8 else np.uint16 if most <= 1 << 16 else np.uint32)
    per_pass = trees_per_pass or max(1, LEAF_BYTES_PER_ROW // dtype.itemsize)
    number = []                                  # per tree: node id -> leaf number
    for tree, nodes in zip(trees, leaf_nodes):
        lut = np.zeros(len(tree["left_children"]), dtype=dtype)
        lut[nodes] = np.arange(len(nodes))
        number.append(lut)

    n = getattr(chunks, "n_rows", None)
    if n is None:
        n = sum(len(label) for _, label, _ in chunks)
    label = np.empty(n, dtype=np.float32)
    weight: np.ndarray | None = None
    margin = np.full(n, float(np.asarray(json.loads(
        learner["learner_model_param"]["base_score"])).reshape(-1)[0]), dtype=np.float64)
    grad = np.empty_like(margin)
    eta, lam, alpha = hp.eta, getattr(hp, "lambda"), hp.alpha
    for t0 in range(0, len(trees), per_pass):
        t1 = min(t0 + per_pass, len(trees))
        leaves = np.empty((t1 - t0, n), dtype=dtype)
        part, at = booster[t0:t1], 0
        for X, y, w in chunks:
            m = len(y)
            nodes = part.predict(to_dmatrix(X), pred_leaf=True).reshape(m, t1 - t0)
            nodes = nodes.astype(np.intp)
            for j in range(t1 - t0):
                leaves[j, at:at + m] = number[t0 + j][nodes[:, j]]
            if t0 == 0:
                label[at:at + m] = y
                if w is not None:
                    if weight is None:
                        weight = np.zeros(n, dtype=np.float32)
                    weight[at:at + m] = w
            at += m
        if at != n:
            raise ValueError(f"the chunks held {at} rows, expected {n}")
        for j in range(t1 - t0):
            tree, nodes = trees[t0 + j], leaf_nodes[t0 + j]
            leaf = leaves[j]
            np.subtract(margin, label, out=grad)
            if weight is not None:
                grad *= weight
            g = np.bincount(leaf, weights=grad, minlength=len(nodes))
            h = (np.bincount(leaf, weights=weight, minlength=len(nodes)) if weight is not None
                 else np.bincount(leaf, minlength=len(nodes)).astype(np.float64))
            g = np.sign(g) * np.maximum(np.abs(g) - alpha, 0.0)
            fresh = h > 0
            value = np.asarray(tree["split_conditions"], dtype=np.float64)[nodes]
            value[fresh] = -eta * g[fresh] / (h[fresh] + lam)
            for key in ("split_conditions", "base_weights"):
                column = np.asarray(tree[key], dtype=np.float64)
                column[nodes[fresh]] = value[fresh]
                tree[key] = column.tolist()
            margin += value[leaf]
        del leaves
    refreshed = xgb.Booster()
    refreshed.load_model(bytearray(json.dumps(model).encode()))
    return refreshed
