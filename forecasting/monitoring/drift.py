"""Drift: has the data moved away from what the model was trained on?

Per product family (and over all series), four features of the recent window are compared with
the reference (training) window by the population stability index,

    PSI = sum_i (r_i - e_i) * ln(r_i / e_i)

over the bins of each feature (e = reference share, r = recent share, both floored at
`EPSILON`):
- sales_level: log1p(sales) in the reference's decile bins;
- zero_rate: the share of zero-sales days (2 bins);
- promo_rate: the share of days on promotion (2 bins);
- dow_profile: the share of sales sold on each day of the week (7 bins).

Conventional thresholds: below 0.1 stable, 0.1-0.25 a moderate shift, 0.25 and above a
significant one (`Thresholds`). A significant shift in any family's feature is reported with
the series whose mean level moved most.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURES = ("sales_level", "zero_rate", "promo_rate", "dow_profile")
EPSILON = 1e-4
LEVEL_BINS = 10
#: Series listed as having moved most, at most.
TOP_SERIES = 10


@dataclass(frozen=True)
class Thresholds:
    """PSI levels: `watch` and above is reported as moderate, `alert` and above as drift."""

    watch: float = 0.1
    alert: float = 0.25
    min_rows: int = 100
    """Families (or a whole window) with fewer recent rows are not scored (too few to tell)."""


@dataclass
class DriftReport:
    """The comparison of a recent window with the reference window."""

    reference: tuple[str, str]
    recent: tuple[str, str]
    overall: dict[str, float]
    per_family: dict[str, dict[str, float]]
    drifted: list[dict] = field(default_factory=list)
    """[{family, feature, psi}] at or above the alert threshold, worst first (family "" is all
    series together)."""
    moved_series: list[dict] = field(default_factory=list)
    """[{store_nbr, family, reference_mean, recent_mean}] whose level moved most."""
    score: float = 0.0
    """The largest PSI over families (and all series together) and features: the headline."""

    @property
    def alert(self) -> bool:
        """True when any family's feature drifted."""
        return bool(self.drifted)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two histograms (counts or weights over the same bins)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _features(ref: pd.DataFrame, new: pd.DataFrame) -> dict[str, float]:
    ref_level = np.log1p(ref["sales"].to_numpy(np.float64))
    new_level = np.log1p(new["sales"].to_numpy(np.float64))
    edges = np.unique(np.quantile(ref_level, np.linspace(0, 1, LEVEL_BINS + 1)[1:-1]))
    level = psi(np.bincount(np.searchsorted(edges, ref_level, side="right"),
                            minlength=len(edges) + 1),
                np.bincount(np.searchsorted(edges, new_level, side="right"),
                            minlength=len(edges) + 1))

    def two(mask_ref: np.ndarray, mask_new: np.ndarray) -> float:
        return psi([mask_ref.sum(), (~mask_ref).sum()], [mask_new.sum(), (~mask_new).sum()])

    def dow(frame: pd.DataFrame) -> np.ndarray:
        weekday = (frame["date"].to_numpy().astype("datetime64[D]").astype(np.int64) + 3) % 7
        return np.bincount(weekday, weights=frame["sales"].to_numpy(np.float64), minlength=7)

    return {
        "sales_level": round(level, 6),
        "zero_rate": round(two(ref["sales"].to_numpy() == 0, new["sales"].to_numpy() == 0), 6),
        "promo_rate": round(two(ref["onpromotion"].to_numpy() > 0,
                                new["onpromotion"].to_numpy() > 0), 6),
        "dow_profile": round(psi(dow(ref), dow(new)), 6),
    }


def _span(frame: pd.DataFrame) -> tuple[str, str]:
    dates = frame["date"].to_numpy().astype("datetime64[D]")
    return (str(dates.min()), str(dates.max())) if len(dates) else ("", "")


def compare(reference: pd.DataFrame, recent: pd.DataFrame,
            thresholds: Thresholds = Thresholds()) -> DriftReport:
    """Compare `recent` rows with `reference` rows (both of the data schema: date, store_nbr,
    family, sales, onpromotion)."""
    enough = len(recent) >= thresholds.min_rows and len(reference) >= thresholds.min_rows
    report = DriftReport(reference=_span(reference), recent=_span(recent),
                         overall=_features(reference, recent) if enough else {}, per_family={})
    for name, value in report.overall.items():
        if value >= thresholds.alert:
            report.drifted.append({"family": "", "feature": name, "psi": value})
    ref_groups = dict(tuple(reference.groupby("family", sort=True)))
    for family, new in recent.groupby("family", sort=True):
        ref = ref_groups.get(family)
        if ref is None or len(new) < thresholds.min_rows or len(ref) < thresholds.min_rows:
            continue
        feats = _features(ref, new)
        report.per_family[str(family)] = feats
        for name, value in feats.items():
            if value >= thresholds.alert:
                report.drifted.append({"family": str(family), "feature": name, "psi": value})
    report.drifted.sort(key=lambda d: -d["psi"])
    report.score = max((v for f in (report.overall, *report.per_family.values())
                        for v in f.values()), default=0.0)
    if report.drifted:
        report.moved_series = _moved_series(reference, recent)
    return report


def _moved_series(reference: pd.DataFrame, recent: pd.DataFrame) -> list[dict]:
    keys = ["store_nbr", "family"]
    ref = reference.groupby(keys)["sales"].mean().rename("reference_mean")
    new = recent.groupby(keys)["sales"].mean().rename("recent_mean")
    both = pd.concat([ref, new], axis=1, join="inner")
    change = np.abs(np.log1p(both["recent_mean"]) - np.log1p(both["reference_mean"]))
    top = both.assign(change=change).nlargest(TOP_SERIES, "change")
    return [{"store_nbr": int(s), "family": str(f), "reference_mean": round(float(r), 4),
             "recent_mean": round(float(n), 4)}
            for (s, f), r, n in zip(top.index, top["reference_mean"], top["recent_mean"])]
