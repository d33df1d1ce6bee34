"""Regenerate the golden artifact that test_golden_artifact.py loads.

Run only when the artifact schema version changes on purpose:
    .venv/bin/python tests/forecasting/make_golden_artifact.py
"""

import json
import shutil
from pathlib import Path

from forecasting import synthetic, training
from forecasting.predictor import Predictor

HERE = Path(__file__).resolve().parent / "fixtures"
REQUEST = {"date": ["2017-08-16", "2017-08-20", "2017-08-31", "2017-08-16"],
           "store_nbr": [1, 2, 2, 1], "family": ["AUTOMOTIVE", "BEAUTY", "AUTOMOTIVE", "BEAUTY"],
           "onpromotion": [0, 4, 1, 0]}


def main() -> None:
    frame = synthetic.generate(2, 3, "2016-09-01", "2017-08-15", seed=11)
    model = training.train(frame, {"num_round": "25", "max_depth": "4"}, log=lambda _: None)
    target = HERE / "artifact_v1"
    shutil.rmtree(target, ignore_errors=True)
    model.save(target)
    values = Predictor.load(target).predict_columns(**REQUEST).tolist()
    (HERE / "artifact_v1_expected.json").write_text(json.dumps(
        {"request": REQUEST, "forecasts": values}, indent=2))


if __name__ == "__main__":
    main()
