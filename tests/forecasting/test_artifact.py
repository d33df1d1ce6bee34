"""The artifact is a promise: a round trip gives the same forecasts, and foreign, old or
damaged directories fail with a clear message."""

import json
import shutil

import numpy as np
import pytest

from forecasting import artifact
from forecasting.errors import ArtifactError
from forecasting.predictor import Predictor


def test_round_trip_gives_identical_forecasts(trained, model_dir):
    p = Predictor.load(model_dir)
    dates = [str(p.last_date + np.timedelta64(d, "D")) for d in (1, 5, 16)]
    stores = p.history.store_nbr[:3]
    fams = p.history.family[:3]
    loaded = p.predict_columns(dates, stores, fams, [0, 1, 2])
    from forecasting.forecast import build_grid, gather
    from forecasting.history import ForecastInput
    grid = build_grid(p.lookup, p.last_date, dates, stores, fams, [0, 1, 2])
    s = grid.series
    inp = ForecastInput(trained.history.sales[s], trained.history.promo[s], p.store_code[s],
                        p.family_code[s], p.last_date + np.arange(1, grid.horizon + 1)
                        .astype("timedelta64[D]"), grid.promo)
    np.testing.assert_array_equal(gather(grid, trained.members["xgboost"].forecast(inp)), loaded)


def test_layout_and_metadata(model_dir):
    meta = json.loads((model_dir / "artifact.json").read_text())
    assert meta["format"] == artifact.FORMAT and meta["schema_version"] == artifact.SCHEMA_VERSION == 3
    assert meta["final_model"] == "xgboost" and "xgboost" in meta["members"]
    assert set(meta["data"]) >= {"start", "end", "rows", "series", "sha256"}
    assert meta["hyperparameters"]["num_round"] == "60"
    assert {"xgboost", "numpy", "pandas", "python"} <= set(meta["library_versions"])
    ev = json.loads((model_dir / "evaluation.json").read_text())
    assert set(ev["models"]["xgboost"]["overall"]) == {"rmse", "rmsle", "mae", "wape", "bias", "mase"}
    assert ev["models"]["xgboost"]["overall"]["mase"] > 0
    assert ev["baseline"]["per_family"]
    features = json.loads((model_dir / "features.json").read_text())["features"]
    assert features[0] == "lag_1" and features[-1] == "family"
    report = json.loads((model_dir / "cleaning_report.json").read_text())
    assert "filled_missing_days" in report


@pytest.fixture
def copy(model_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(model_dir, target)
    return target


def test_foreign_directory(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="artifact.json is missing"):
        Predictor.load(tmp_path)
    with pytest.raises(ArtifactError, match="does not exist"):
        Predictor.load(tmp_path / "nope")


def test_foreign_format(copy):
    (copy / "artifact.json").write_text(json.dumps({"format": "sklearn-pickle"}))
    with pytest.raises(ArtifactError, match="not a retail-forecast model"):
        Predictor.load(copy)


def test_old_version(copy):
    meta = json.loads((copy / "artifact.json").read_text())
    meta["schema_version"] = 0
    (copy / "artifact.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="schema version 0 is not supported"):
        Predictor.load(copy)


def test_corrupt_files(copy):
    (copy / "evaluation.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="evaluation.json is not valid JSON"):
        Predictor.load(copy)


def test_corrupt_member(copy):
    (copy / "members" / "xgboost" / "model.ubj").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="cannot be loaded"):
        Predictor.load(copy)


def test_missing_member(copy):
    shutil.rmtree(copy / "members" / "xgboost")
    with pytest.raises(ArtifactError, match="members/xgboost/member.json is missing"):
        Predictor.load(copy)
