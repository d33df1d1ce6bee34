"""The UBJSON reader the refresh writes leaf values through (forecasting/models/ubj_model.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from forecasting.models import ubj_model


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=2000), rng.integers(0, 12, 2000)]).astype(np.float32)
    y = X[:, 0] + (X[:, 1] % 3) + rng.normal(0, 0.1, 2000)
    matrix = xgb.DMatrix(X, label=y, feature_types=["q", "c"], enable_categorical=True)
    return xgb.train({"max_depth": 3, "max_cat_to_onehot": 1, "subsample": 0.8}, matrix, 4)


def test_the_ubjson_reads_as_the_json_does_with_arrays_as_views(booster):
    as_json = json.loads(booster.save_raw("json"))
    buffer = bytearray(booster.save_raw("ubj"))
    model = ubj_model.load(buffer)
    json_trees = as_json["learner"]["gradient_booster"]["model"]["trees"]
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    assert len(trees) == len(json_trees) == 4
    for tree, expected in zip(trees, json_trees):
        assert set(tree) == set(expected)
        for key, value in expected.items():
            if isinstance(value, list):
                np.testing.assert_allclose(np.asarray(tree[key], dtype=float), value, rtol=1e-6,
                                           atol=1e-30)
            else:
                assert tree[key] == value
    assert any(len(t["categories"]) for t in trees)       # a categorical split was read
    assert model["learner"]["learner_model_param"] == as_json["learner"]["learner_model_param"]


def test_a_leaf_written_into_the_view_is_the_loaded_models_leaf(booster):
    X = np.column_stack([np.linspace(-2, 2, 50), np.arange(50) % 12]).astype(np.float32)
    matrix = xgb.DMatrix(X, feature_types=["q", "c"], enable_categorical=True)
    before = booster.predict(matrix, output_margin=True)
    leaves = booster.predict(matrix, pred_leaf=True).astype(int)
    buffer = bytearray(booster.save_raw("ubj"))
    tree = ubj_model.load(buffer)["learner"]["gradient_booster"]["model"]["trees"][2]
    node = leaves[0, 2]
    assert tree["left_children"][node] == -1
    tree["split_conditions"][node] += 0.5
    changed = xgb.Booster()
    changed.load_model(buffer)
    expected = before + np.where(leaves[:, 2] == node, 0.5, 0.0)
    np.testing.assert_allclose(changed.predict(matrix, output_margin=True), expected, atol=1e-5)


@pytest.mark.parametrize("cut, message", [(-7, "ends at offset"), (None, "bytes after")])
def test_broken_bytes_name_the_offset(booster, cut, message):
    raw = bytearray(booster.save_raw("ubj"))
    broken = raw[:cut] if cut is not None else raw + b"Z"
    with pytest.raises(ubj_model.UBJError, match=message):
        ubj_model.load(broken)
