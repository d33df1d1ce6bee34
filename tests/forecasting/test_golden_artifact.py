"""A saved model is a promise: artifacts written by earlier releases (committed under
fixtures/, made by ``make_golden_artifact.py``) still load and give the same forecasts, and
the same prediction intervals where they had them.

- version 1: no intervals;
- version 2 (3abdd5b): 11 features, unknown lags trained as -1, per-step intervals."""

import json
from pathlib import Path

import numpy as np
import pytest

from forecasting import intervals
from forecasting.predictor import Predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("version", [1, 2])
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


def test_the_version_2_artifact_keeps_its_own_features_and_interval_method():
    predictor = Predictor.load(FIXTURES / "artifact_v2")
    member = predictor.members["xgboost"]
    assert len(member.features) == 11 and member.lookback == 14
    assert member.unknown_value == -1.0
    assert isinstance(predictor.calibration, intervals.StepCalibration)
