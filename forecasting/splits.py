"""Time-based splits: test = the last H days, validation = the H days before, train = the rest.

Splits are by day, never by row, so every series is cut at the same dates. Forecasts for the
test days are made recursively from the origin (the last validation day), so a test-day
feature only sees what was known at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasting.errors import DataValidationError


@dataclass(frozen=True)
class DateSplit:
    """Inclusive day ranges, in days since the panel origin."""

    train_end: int      # last training day
    valid_end: int      # last validation day = forecast origin for the test
    test_end: int       # last day of the data
    horizon: int

    @property
    def origin(self) -> int:
        return self.valid_end

    def everything(self) -> DateSplit:
        """Every day a training day, none held out: the split of the refit on all history."""
        return DateSplit(train_end=self.test_end, valid_end=self.test_end,
                         test_end=self.test_end, horizon=self.horizon)

    def masks(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean row masks (train, validation, test) for an array of days."""
        train = day <= self.train_end
        test = day > self.valid_end
        return train, ~train & ~test, test


def split_by_date(last_day: int, horizon: int, min_train_days: int = 28) -> DateSplit:
    """Cut ``0..last_day`` into train / validation / test of ``horizon`` days each at the end."""
    train_end = last_day - 2 * horizon
    if train_end + 1 < min_train_days:
        raise DataValidationError(
            "date",
            f"history covers {last_day + 1} days; with horizon {horizon} it needs at least "
            f"{min_train_days + 2 * horizon} (train {min_train_days} + validation and test "
            f"{horizon} each)")
    return DateSplit(train_end=train_end, valid_end=last_day - horizon,
                     test_end=last_day, horizon=horizon)
