"""The drift detector flags a level change and a promotion change and stays quiet on a
stationary control; its false-alarm rate over seeded runs is counted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.monitoring.drift import compare, psi

WEEKLY = np.array([1.0, 0.9, 0.9, 1.0, 1.2, 1.5, 1.3])


def _panel(seed: int, days: int, start: str, level: float = 1.0, promo_rate: float = 0.1,
           stores: int = 10, families: int = 4) -> pd.DataFrame:
    bases = np.random.default_rng(seed).uniform(5, 50, size=(families, stores)) * level
    rng = np.random.default_rng([seed, days])       # the noise differs between windows
    dates = pd.date_range(start, periods=days, freq="D")
    weekday = dates.dayofweek.to_numpy()
    frames = []
    for family in range(families):
        base = bases[family]
        promo = (rng.random((stores, days)) < promo_rate).astype(np.int32)
        mean = base[:, None] * WEEKLY[weekday][None, :] * (1 + 0.3 * promo)
        sales = rng.poisson(mean).astype(np.float64)
        frames.append(pd.DataFrame({
            "date": np.tile(dates, stores), "store_nbr": np.repeat(np.arange(stores), days),
            "family": f"F{family}", "sales": sales.ravel(), "onpromotion": promo.ravel()}))
    return pd.concat(frames, ignore_index=True)


def _pair(seed: int, **recent) -> tuple[pd.DataFrame, pd.DataFrame]:
    # The same stores and families (same seed for the base levels), a later window.
    return _panel(seed, 364, "2016-01-01"), _panel(seed, 28, "2016-12-30", **recent)


def test_psi_is_zero_for_equal_histograms_and_grows_with_the_shift() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == 0.0
    assert 0 < psi([50, 50], [60, 40]) < psi([50, 50], [90, 10])


def test_a_level_change_is_flagged_with_the_series_that_moved() -> None:
    report = compare(*_pair(1, level=1.8))
    assert report.alert
    assert {d["feature"] for d in report.drifted} == {"sales_level"}
    assert len(report.moved_series) == 10
    assert all(s["recent_mean"] > s["reference_mean"] for s in report.moved_series)


def test_a_promotion_change_is_flagged() -> None:
    report = compare(*_pair(2, promo_rate=0.5))
    assert "promo_rate" in {d["feature"] for d in report.drifted}


def test_false_alarms_on_stationary_data_are_rare() -> None:
    runs = 20
    alarms = sum(compare(*_pair(100 + seed)).alert for seed in range(runs))
    shifted = sum(compare(*_pair(200 + seed, level=1.5)).alert for seed in range(runs))
    assert alarms == 0, f"{alarms} false alarms in {runs} stationary runs"
    assert shifted == runs
