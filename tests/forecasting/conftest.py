"""Fixtures for the library's tests: small synthetic data and one trained model per session."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting import synthetic, training

FAST_HP = {"num_round": "60", "early_stopping_rounds": "10", "max_depth": "6"}


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    """3 stores x 4 families over ~1.5 years, in the competition's schema."""
    return synthetic.generate(3, 4, "2016-03-01", "2017-08-15", seed=3)


@pytest.fixture(scope="session")
def lstm_frame() -> pd.DataFrame:
    """3 stores x 4 families from 2016-01-01: the history the LSTM and hybrid tests train on."""
    return synthetic.generate(3, 4, "2016-01-01", "2017-08-15", seed=1)


@pytest.fixture(scope="session")
def trained(small_frame):
    return training.train(small_frame, FAST_HP, log=lambda _: None)


@pytest.fixture(scope="session")
def model_dir(trained, tmp_path_factory):
    return trained.save(tmp_path_factory.mktemp("model") / "model")
