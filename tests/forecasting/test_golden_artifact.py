"""A saved model is a promise: artifacts written by earlier releases (committed under
fixtures/, made by ``make_golden_artifact.py``) still load and give the same forecasts, and
the same prediction intervals where they had them.

- version 1: no intervals;
- version 2 (3abdd5b): 11 features, unknown lags trained as -1, per-step intervals;
- version 3 (d2dc9ef): the 14 default features, per-series interval bands.

``bulk_forecast_expected.json`` holds what d2dc9ef (before the bulk predict was reordered and
threaded) answered for every series of each artifact on each of 40 days: the fast path has to
give the same numbers."""

import json
from pathlib import Path

import numpy as np
import pytest
from make_golden_artifact import bulk_request

from forecasting import intervals
from forecasting.predictor import Predictor
from forecasting.wide import WideForecasts

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_artifact_still_forecasts_the_same(version):
    expected = json.loads((FIXTURES / f"artifact_v{version}_expected.json").read_text())
    predictor = Predictor.load(FIXTURES / f"artifact_v{version}")
    got = predictor.predict_columns(**expected["request"])
    np.testing.assert_allclose(got, expected["forecasts"], rtol=1e-5)
    if "bounds" in expected:
        _, bounds = predictor.predict_intervals(**expected["request"],
                                                levels=expected["levels"])
        for level, (lower, upper) in expected["bounds"].items():
            np.testing.assert_allclose(bounds[float(level)][0], lower, rtol=1e-5)
            np.testing.assert_allclose(bounds[float(level)][1], upper, rtol=1e-5)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_bulk_forecast_gives_the_recorded_numbers(version):
    expected = json.loads((FIXTURES / "bulk_forecast_expected.json").read_text())[str(version)]
    predictor = Predictor.load(FIXTURES / f"artifact_v{version}")
    rows = bulk_request(predictor)
    assert len(rows) == len(expected["forecasts"]) == len(predictor.series) * expected["days"]
    np.testing.assert_allclose(predictor.predict(rows), expected["forecasts"], rtol=1e-6)
    wide = WideForecasts(threads=4, min_series=1)     # the series split across 4 threads
    try:
        split = predictor.predict_columns(rows["date"], rows["store_nbr"], rows["family"],
                                          rows["onpromotion"], wide=wide)
    finally:
        wide.close()
    np.testing.assert_allclose(split, expected["forecasts"], rtol=1e-6)
    if "bounds_80" in expected:
        _, bounds = predictor.predict_frame_intervals(rows, [80])
        np.testing.assert_allclose(bounds[80.0][0], expected["bounds_80"][0], rtol=1e-6)
        np.testing.assert_allclose(bounds[80.0][1], expected["bounds_80"][1], rtol=1e-6)


def test_the_version_2_artifact_keeps_its_own_features_and_interval_method():
    predictor = Predictor.load(FIXTURES / "artifact_v2")
    member = predictor.members["xgboost"]
    assert len(member.features) == 11 and member.lookback == 14
    assert member.unknown_value == -1.0
    assert isinstance(predictor.calibration, intervals.StepCalibration)
