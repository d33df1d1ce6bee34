import numpy as np
import pytest

from forecasting.errors import DataValidationError
from forecasting.splits import split_by_date


def test_last_h_days_are_test_and_the_h_before_are_validation():
    split = split_by_date(last_day=99, horizon=16)
    train, valid, test = split.masks(np.arange(100))
    assert test.sum() == 16 and np.flatnonzero(test)[0] == 84
    assert valid.sum() == 16 and np.flatnonzero(valid)[0] == 68
    assert train.sum() == 68 and split.origin == 83
    assert not (train & valid).any() and not (valid & test).any()


def test_too_short_history_is_a_clear_error():
    with pytest.raises(DataValidationError, match="needs at least 60"):
        split_by_date(last_day=40, horizon=16)
