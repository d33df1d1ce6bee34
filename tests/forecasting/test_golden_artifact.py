"""A saved model is a promise: an artifact written by an earlier release (schema version 1,
committed under fixtures/) still loads and gives the same forecasts."""

import json
from pathlib import Path

import numpy as np

from forecasting.predictor import Predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_version_1_artifact_still_forecasts_the_same():
    expected = json.loads((FIXTURES / "artifact_v1_expected.json").read_text())
    predictor = Predictor.load(FIXTURES / "artifact_v1")
    got = predictor.predict_columns(**expected["request"])
    np.testing.assert_allclose(got, expected["forecasts"], rtol=1e-5)
