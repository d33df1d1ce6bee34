"""``clean``: the pipeline's Clean step, a SageMaker Processing job (``IMAGE clean --horizon N``).

Reads the raw upload (every CSV or Parquet file under /opt/ml/processing/input/raw), validates
it against the store-sales schema, cleans it into a panel and cuts it by date
(``forecasting.splits``: test = the last ``horizon`` days, validation = the ``horizon`` days
before, train = the rest). Writes

    /opt/ml/processing/output/<split>/<split>.parquet     split = train, validation, test
    /opt/ml/processing/output/report/cleaning_report.json

With ``--shards N`` (N > 1: a training job on N instances) each split is N files instead,
``<split>/part-NNNNN.parquet``, whole series per file, balanced by rows, each series in the same
shard number in every split (``forecasting.sharding``).

The splits hold the validated rows (the schema's columns, normalised) of their days. The
training step cleans its rows again with the same deterministic rules, so it learns exactly
what a direct training job on the same rows would, and series that never sold stay in the model
(forecast 0). The report says what was repaired and where the dates were cut.

On failure the reason goes to /opt/ml/output/message (the job's ExitMessage) and the exit code
is non-zero (``forecasting.container.failure``).
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import pandas as pd

from forecasting import artifact, sharding
from forecasting.cleaning import clean
from forecasting.container.env import CLEANING_REPORT_FILE, SPLITS, ProcessingEnv, data_files
from forecasting.container.failure import run_job
from forecasting.errors import DataValidationError, UserError
from forecasting.hyperparameters import parse
from forecasting.schema import check_unique_keys, read_table, validate_history
from forecasting.splits import split_by_date

COLUMNS = ("date", "store_nbr", "family", "sales", "onpromotion")


class _ArgumentParser(argparse.ArgumentParser):
    """Bad arguments are a user error (failure file + exit 2), not argparse's bare exit."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}")


def parse_args(argv: list[str]) -> tuple[int, int]:
    """``--horizon N`` (the training hyperparameter, checked by its schema) and ``--shards K``
    (default 1); returns (N, K)."""
    parser = _ArgumentParser(prog="clean", add_help=False)
    parser.add_argument("--horizon", default=None)
    parser.add_argument("--shards", default="1")
    args = parser.parse_args(argv)
    raw = {} if args.horizon is None else {"horizon": args.horizon}
    try:
        shards = int(args.shards)
    except ValueError:
        shards = 0
    if not 1 <= shards <= 10_000:
        raise UserError(f"clean: --shards must be an integer from 1 to 10000, got {args.shards!r}")
    return parse(raw).horizon, shards


def run(env: ProcessingEnv, horizon: int, shards: int = 1) -> dict:
    """One Clean job in the given tree; returns the cleaning report it wrote."""
    files = data_files(env.raw_dir)
    if not files:
        raise UserError(f"input 'raw' has no data files under {env.raw_dir}")
    print(f"cleaning {len(files)} file(s) from input 'raw'", flush=True)
    frames, schema_reports = [], []
    for path in files:
        try:
            frame, report = validate_history(read_table(path))
        except DataValidationError as exc:
            raise DataValidationError(None, f"{path.name}: {exc}") from None
        frames.append(frame)
        schema_reports.append({"file": path.name, **report})
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) > 1:
        check_unique_keys(frame)     # each file is valid; only keys can clash across files

    panel, cleaning_report = clean(frame)
    split = split_by_date(panel.last_day, horizon)
    try:   # the Train step holds out its own validation and test days from train + validation
        split_by_date(split.valid_end, horizon)
    except DataValidationError as exc:
        raise DataValidationError(
            "date", f"history covers {panel.last_day + 1} days; the pipeline holds out the last "
                    f"{horizon} as its test, and training on the rest needs: {exc.rule}") from None

    day = (frame["date"].to_numpy().astype("datetime64[D]") - panel.origin).astype(np.int64)
    masks = dict(zip(SPLITS, split.masks(day)))
    shard = sharding.assign(frame, shards) if shards > 1 else None
    summary = {}
    for name in SPLITS:
        rows = frame.loc[masks[name], list(COLUMNS)].reset_index(drop=True)
        rows["family"] = rows["family"].astype(str)
        out = env.split_dir(name)
        out.mkdir(parents=True, exist_ok=True)
        if shard is None:
            rows.to_parquet(out / f"{name}.parquet", index=False)
        else:
            parts = sharding.write_shards(rows, shard[masks[name]], shards, out)
            print(f"{name}: {shards} shards of {min(p['rows'] for p in parts)} to "
                  f"{max(p['rows'] for p in parts)} rows", flush=True)
        summary[name] = {"rows": len(rows),
                         "start": str(rows["date"].min().date()) if len(rows) else None,
                         "end": str(rows["date"].max().date()) if len(rows) else None}
        print(f"{name}: {len(rows)} rows, {summary[name]['start']} to {summary[name]['end']}",
              flush=True)
    dates = panel.dates(np.array([split.train_end, split.valid_end, split.test_end]))
    report = {
        "schema": schema_reports,          # one entry per input file
        **cleaning_report,
        "split": {"horizon": horizon, "train_end": str(dates[0]),
                  "validation_end": str(dates[1]), "test_end": str(dates[2]), **summary},
    }
    env.report_dir.mkdir(parents=True, exist_ok=True)
    artifact.write_json(env.report_dir / CLEANING_REPORT_FILE, report)
    print(f"cleaning report written to {env.report_dir / CLEANING_REPORT_FILE}", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """Console script ``clean``; returns (and exits with) the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = ProcessingEnv.from_environ()
    args = sys.argv[1:] if argv is None else argv
    code = run_job(lambda: run(env, *parse_args(args)), env.failure_file,
                   "the processing job received SIGTERM (StopProcessingJob)")
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
