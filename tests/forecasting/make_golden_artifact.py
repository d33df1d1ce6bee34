"""Regenerate a golden artifact that test_golden_artifact.py loads.

A golden artifact is a promise kept to models already saved: it is written once, by the
release that introduced its schema version, and never again. To make one, run this file with
that release's library on the path, naming the version:

    git worktree add /tmp/release <commit>                # the release that wrote version N
    PYTHONPATH=/tmp/release .venv/bin/python tests/forecasting/make_golden_artifact.py 2

``fixtures/artifact_v1`` came from the release before intervals; ``fixtures/artifact_v2``
from 3abdd5b (11 features, unknown lags as -1, per-step intervals); ``fixtures/artifact_v3``
from d2dc9ef (the 14 default features, per-series interval bands).

``bulk`` records what a release answers for every series of each golden artifact on each of
BULK_DAYS days (with promotions, and the 80% bounds where there are intervals), into
``fixtures/bulk_forecast_expected.json``; d2dc9ef wrote it, before the bulk predict was
reordered and threaded (docs/benchmarks.md), so the fast path is held to the plain one:

    PYTHONPATH=/tmp/release .venv/bin/python tests/forecasting/make_golden_artifact.py bulk
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from forecasting import synthetic, training
from forecasting.predictor import Predictor

HERE = Path(__file__).resolve().parent / "fixtures"
REQUEST = {"date": ["2017-08-16", "2017-08-20", "2017-08-31", "2017-08-16"],
           "store_nbr": [1, 2, 2, 1], "family": ["AUTOMOTIVE", "BEAUTY", "AUTOMOTIVE", "BEAUTY"],
           "onpromotion": [0, 4, 1, 0]}
LEVELS = (80, 95)
BULK_DAYS = 40


def bulk_request(predictor: Predictor):
    """Every series of the model on each of BULK_DAYS days, promotions on a fixed pattern."""
    rows = predictor.future_rows(BULK_DAYS)
    i = np.arange(len(rows))
    rows["onpromotion"] = (i * 7 % 5 == 0) * (i % 4)
    return rows


def record_bulk() -> None:
    out = {}
    for version in (1, 2, 3):
        predictor = Predictor.load(HERE / f"artifact_v{version}")
        rows = bulk_request(predictor)
        entry = {"days": BULK_DAYS, "forecasts": predictor.predict(rows).tolist()}
        if predictor.calibration is not None:
            _, bounds = predictor.predict_frame_intervals(rows, [80])
            entry["bounds_80"] = [bounds[80.0][0].tolist(), bounds[80.0][1].tolist()]
        out[str(version)] = entry
    (HERE / "bulk_forecast_expected.json").write_text(json.dumps(out))


def main(version: str) -> None:
    frame = synthetic.generate(2, 3, "2016-09-01", "2017-08-15", seed=11)
    model = training.train(frame, {"num_round": "25", "max_depth": "4"}, log=lambda _: None)
    target = HERE / f"artifact_v{version}"
    shutil.rmtree(target, ignore_errors=True)
    model.save(target)
    predictor = Predictor.load(target)
    expected = {"request": REQUEST, "forecasts": predictor.predict_columns(**REQUEST).tolist()}
    if predictor.calibration is not None:
        _, bounds = predictor.predict_intervals(**REQUEST, levels=LEVELS)
        expected["levels"] = list(LEVELS)
        expected["bounds"] = {f"{k:g}": [lo.tolist(), hi.tolist()]
                              for k, (lo, hi) in bounds.items()}
    (HERE / f"artifact_v{version}_expected.json").write_text(json.dumps(expected, indent=2))


if __name__ == "__main__":
    if sys.argv[1:] == ["bulk"]:
        record_bulk()
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "1")
