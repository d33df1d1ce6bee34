"""``evaluate``: the pipeline's Evaluate step, a SageMaker Processing job (``IMAGE evaluate``).

Loads the trained model (``model.tar.gz`` as the Train step wrote it, or the extracted artifact)
from /opt/ml/processing/input/model and the test split from /opt/ml/processing/input/test,
forecasts the test days recursively from the model's last history day (the serving path,
``Predictor``), scores the forecasts and the seasonal-naive baseline with the library's metrics
and writes /opt/ml/processing/output/evaluation/evaluation.json:

    horizon, origin, test_start, test_end, series, final_model    what was scored
    models.<final>.{overall,per_family}, baseline.{...}            ``forecasting.metrics.evaluate``
    series_not_in_model, rows_not_in_model                        test rows the model cannot score
    summary.{metric, model_rmsle, baseline_rmsle, beats_baseline}  what the pipeline's condition
                                                                   reads (a PropertyFile)

Scored, as in training's own evaluation: every series the model has history for, over every
test day; a day missing from the test rows counts as 0 sales (the cleaning rule). On failure the
reason goes to /opt/ml/output/message and the exit code is non-zero.
"""

from __future__ import annotations

import logging
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from forecasting import artifact, metrics
from forecasting.container.env import EVALUATION_FILE, ProcessingEnv, data_files
from forecasting.container.failure import run_job
from forecasting.errors import DataValidationError, UserError
from forecasting.predictor import Predictor
from forecasting.schema import check_unique_keys, read_table, validate_history

SEASON = 7


def extract_model(archive: Path, dest: Path) -> Path:
    """Unpack model.tar.gz into ``dest`` (regular files and directories only, nothing outside
    ``dest``); returns the directory that holds artifact.json."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise UserError(f"{archive.name}: member {member.name!r} points outside the "
                                    f"archive")
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"{archive.name}: member {member.name!r} is not a regular "
                                    f"file or directory")
            tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"{archive.name} is not a readable tar.gz archive: {exc}") from None
    found = sorted(p.parent for p in dest.rglob("artifact.json"))
    if not found:
        raise UserError(f"{archive.name} holds no model (no artifact.json inside)")
    return found[0]


def locate_model(model_input: Path, scratch: Path) -> Path:
    """The artifact directory: ``model_input`` itself, or its one model.tar.gz unpacked."""
    if (model_input / "artifact.json").exists():
        return model_input
    archives = [p for p in data_files(model_input) if p.name.endswith((".tar.gz", ".tgz"))]
    if len(archives) != 1:
        found = ", ".join(p.name for p in data_files(model_input)[:8]) or "nothing"
        raise UserError(f"input 'model' must hold one model.tar.gz or an extracted model "
                        f"(found: {found} under {model_input})")
    return extract_model(archives[0], scratch)


def read_test_rows(test_input: Path) -> pd.DataFrame:
    """The test split's rows, validated (every file under the input, keys unique across files)."""
    files = data_files(test_input)
    if not files:
        raise UserError(f"input 'test' has no data files under {test_input}")
    frames = []
    for path in files:
        try:
            frames.append(validate_history(read_table(path))[0])
        except DataValidationError as exc:
            raise DataValidationError(None, f"{path.name}: {exc}") from None
    frame = pd.concat(frames, ignore_index=True)
    check_unique_keys(frame)
    return frame


def evaluate(predictor: Predictor, test: pd.DataFrame) -> dict:
    """Scores of the model's final member and of the seasonal-naive baseline on ``test``."""
    history = predictor.history
    last = history.last_date
    dates = test["date"].to_numpy().astype("datetime64[D]")
    day = (dates - last).astype(np.int64)               # 1 = the first day after the history
    if (day < 1).any():
        bad = np.flatnonzero(day < 1)
        raise DataValidationError(
            "date", f"the test split must start after the model's history ({last}); the model "
                    f"was not trained on this run's train and validation splits",
            rows=bad[:5] + 1, count=len(bad))
    if day.min() != 1:
        raise DataValidationError("date", f"the test split starts on {dates.min()}, not on the "
                                          f"day after the model's history ({last})")
    horizon = int(day.max())
    if history.sales.shape[1] < SEASON:
        raise UserError(f"the model keeps {history.sales.shape[1]} days of history; the "
                        f"seasonal-naive baseline needs {SEASON}")
    series = predictor.lookup.find(test["store_nbr"].to_numpy(),
                                   test["family"].astype(str).to_numpy())
    scored = series >= 0                                  # series with history in the model
    n = len(history.store_nbr)
    actual = np.zeros((n, horizon))
    actual[series[scored], day[scored] - 1] = test["sales"].to_numpy()[scored]
    promo = np.zeros((n, horizon), dtype=np.int64)
    promo[series[scored], day[scored] - 1] = test["onpromotion"].to_numpy()[scored]

    future = last + np.arange(1, horizon + 1).astype("timedelta64[D]")
    forecast = predictor.predict_columns(
        np.tile(future, n), np.repeat(history.store_nbr, horizon),
        np.repeat(history.family.astype(str), horizon), promo.reshape(-1)).reshape(n, horizon)
    baseline = metrics.seasonal_naive(history.sales, horizon, SEASON)
    final = predictor.metadata["final_model"]
    scores = metrics.evaluate({final: forecast}, baseline, actual, history.family.astype(str))
    not_in_model = series == -2
    new_series = test.loc[not_in_model, ["store_nbr", "family"]].drop_duplicates()
    model_rmsle = scores["models"][final]["overall"]["rmsle"]
    baseline_rmsle = scores["baseline"]["overall"]["rmsle"]
    return {
        "horizon": horizon, "origin": str(last), "test_start": str(future[0]),
        "test_end": str(future[-1]), "series": n, "final_model": final,
        **scores,
        "series_not_in_model": len(new_series), "rows_not_in_model": int(not_in_model.sum()),
        "summary": {"metric": "rmsle", "final_model": final, "model_rmsle": model_rmsle,
                    "baseline_rmsle": baseline_rmsle,
                    "beats_baseline": bool(model_rmsle < baseline_rmsle)},
    }


def run(env: ProcessingEnv) -> dict:
    """One Evaluate job in the given tree; returns the evaluation it wrote."""
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model_dir = locate_model(env.model_input_dir, Path(scratch))
        predictor = Predictor.load(model_dir)
        print(f"model loaded from {model_dir} (final member {predictor.metadata['final_model']}, "
              f"history to {predictor.last_date})", flush=True)
        evaluation = evaluate(predictor, read_test_rows(env.test_input_dir))
    for line in metrics.metric_lines(evaluation):
        print(line, flush=True)
    env.evaluation_dir.mkdir(parents=True, exist_ok=True)
    artifact.write_json(env.evaluation_dir / EVALUATION_FILE, evaluation)
    summary = evaluation["summary"]
    print(f"test RMSLE {summary['model_rmsle']} vs seasonal-naive {summary['baseline_rmsle']}: "
          f"{'beats' if summary['beats_baseline'] else 'does not beat'} the baseline; "
          f"written to {env.evaluation_dir / EVALUATION_FILE}", flush=True)
    return evaluation


def main(argv: list[str] | None = None) -> int:
    """Console script ``evaluate``; returns (and exits with) the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = ProcessingEnv.from_environ()
    args = sys.argv[1:] if argv is None else argv

    def job() -> None:
        if args:
            raise UserError(f"evaluate takes no arguments, got {' '.join(args)!r}")
        run(env)

    code = run_job(job, env.failure_file,
                   "the processing job received SIGTERM (StopProcessingJob)")
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
