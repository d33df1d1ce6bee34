"""The training pipeline: history rows in, a versioned model directory out.

validate → clean → split by date → fit the members → forecast the test days recursively
from the origin → evaluate against the seasonal-naive baseline → refit the members on all the
history (``refit``, on by default) → save the artifact.

The evaluation is of the fit that had not seen the test days; the refit has the same capacity
(the rounds and epochs the validation chose, the hybrid's weights) and has also seen the
latest 2 x horizon days, which is what the forecasts after the history should rest on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting import (
    __version__,
    artifact,
    distributed,
    features,
    interval_calibration,
    intervals,
    libc,
    metrics,
)
from forecasting.cleaning import Panel, clean, downsample_zeros
from forecasting.errors import UserError
from forecasting.history import panel_forecast_input, panel_window
from forecasting.hyperparameters import Hyperparameters, parse
from forecasting.joblog import progress_line
from forecasting.models import member_class
from forecasting.models.base import TrainingData
from forecasting.models.hybrid import HybridMember
from forecasting.schema import Source, check_unique_keys, read_table, validate_history
from forecasting.splits import split_by_date

# Which members each model_kind trains, in order; the last one is the final model.
MEMBERS_OF_KIND = {"xgboost": ("xgboost",), "lstm": ("lstm",),
                   "hybrid": ("xgboost", "lstm", "hybrid")}


def _print(line: str) -> None:
    print(line, flush=True)


class _Progress:
    """Progress lines that only move forward. A member reports its own 0..1; while several
    members share the run, ``span`` maps that onto the member's slice of it."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.span = (0.0, 1.0)
        self.prefix = ""        # "refit_" while the members are fit again on all history
        self.reached = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        lo, hi = self.span
        self.reached = max(self.reached, lo + min(max(fraction, 0.0), 1.0) * (hi - lo))
        self.log(progress_line(self.prefix + stage, self.reached))


@dataclass
class TrainedModel:
    """A fitted model and everything the artifact needs."""

    hp: Hyperparameters
    members: dict
    final: str
    encoders: dict
    history: artifact.SeriesTable
    zero_series: pd.DataFrame
    evaluation: dict
    cleaning_report: dict
    metadata: dict
    calibration: intervals.Calibration | None = None   # the prediction intervals

    def save(self, model_dir: str | Path) -> Path:
        """Write the artifact (docs/artifact.md) into ``model_dir``."""
        root = Path(model_dir)
        root.mkdir(parents=True, exist_ok=True)
        for name, member in self.members.items():
            member.save(root / "members" / name)
        artifact.write_json(root / "encoders.json", self.encoders)
        xgboost = self.members.get("xgboost")
        artifact.write_json(root / "features.json", artifact.features_manifest(
            xgboost.features if xgboost is not None else features.DEFAULT))
        artifact.save_history(root / "history.parquet", self.history)
        artifact.write_json(root / "zero_series.json", [
            [int(s), str(f)] for s, f in zip(self.zero_series["store_nbr"],
                                             self.zero_series["family"])])
        artifact.write_json(root / "evaluation.json", self.evaluation)
        artifact.write_json(root / "cleaning_report.json", self.cleaning_report)
        if self.calibration is not None:
            intervals.save(root / intervals.FILE, self.calibration)
        artifact.write_json(root / "artifact.json", self.metadata)  # last: marks completeness
        return root


def data_hash(frame: pd.DataFrame) -> str:
    """A content hash of the validated rows, the same for CSV and Parquet of the same data."""
    hashed = pd.util.hash_pandas_object(frame[["date", "store_nbr", "family", "sales",
                                               "onpromotion"]], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def train(
    source: Source,
    hyperparameters: dict | Hyperparameters | None = None,
    *,
    extra_sources: tuple[Source, ...] = (),
    log: Callable[[str], None] = _print,
) -> TrainedModel:
    """Run the whole pipeline. Raises ``UserError`` subclasses for bad data or settings."""
    started = time.perf_counter()
    hp = hyperparameters if isinstance(hyperparameters, Hyperparameters) else parse(
        hyperparameters)

    if distributed.active() and hp.model_kind != "xgboost":
        raise UserError(f"model_kind={hp.model_kind} trains on one instance; only "
                        "model_kind=xgboost trains across instances (docs/scaling.md)")
    progress = _Progress(log)
    progress("validate", 0.0)
    frame, schema_report = validate_history(read_table(source))
    if extra_sources:   # e.g. a SageMaker `validation` channel: more history rows
        frames = [frame, *(validate_history(read_table(extra))[0] for extra in extra_sources)]
        frame = pd.concat(frames, ignore_index=True)
        check_unique_keys(frame)   # each file is valid; only keys can clash across files
    # On several hosts (``distributed``) each holds whole series; these are over all of them.
    rows_in = distributed.total(len(frame))
    sha256 = distributed.combined_hash(data_hash(frame))
    if distributed.active():
        log(f"distributed: rank {distributed.rank()} reads {len(frame)} of {rows_in} rows")
    progress("clean", 0.05)
    panel, cleaning_report = clean(frame, distributed.date_span(frame["date"].to_numpy()))
    distributed.check_disjoint(panel.store_nbr, panel.family)
    cleaning_report = distributed.merged_report(cleaning_report)
    del frame   # the panel has everything training needs; the rows are not held twice
    _return_freed_memory()
    cleaning_report = {"schema": schema_report, **cleaning_report}
    data, encoders = training_data(panel, hp, log, progress)
    cleaning_report["zero_rows_downsampled_out"] = distributed.total(int(
        (~data.keep & (panel.day <= data.split.train_end)).sum()))
    cleaning_report["zero_sample_rate"] = hp.zero_sample_rate
    split, store_code, family_code = data.split, data.store_code, data.family_code
    kinds = MEMBERS_OF_KIND[hp.model_kind]
    fitted = 0.45 if hp.refit else 0.9       # the share of progress the first fit takes
    members: dict = {}
    summaries: dict = {}
    for i, kind in enumerate(kinds):
        progress.span = (fitted * i / len(kinds), fitted * (i + 1) / len(kinds))
        cls = member_class(kind)
        if kind == "hybrid":
            member = cls.blend(members, data)
        else:
            member = cls()
        summaries[kind] = member.fit(data)
        members[kind] = member

    progress.span = (0.0, 1.0)
    progress("evaluate", fitted)
    evaluation = _evaluate(panel, split, members, store_code, family_code, hp.horizon)
    evaluation["final_model"] = kinds[-1]
    calibration, evaluation["intervals"] = interval_calibration.calibrate_members(
        panel, split, members, kinds[-1], store_code, family_code)
    for line in metrics.metric_lines(evaluation) if distributed.rank() == 0 else ():
        log(line)
    if hp.refit:
        members = _refit(members, dataclasses.replace(data, split=split.everything()), progress,
                         (0.5, 0.95), summaries)

    # The members' lookback, and the days each series' interval band is measured over.
    lookback = max(intervals.VOLATILITY_DAYS, *(m.lookback for m in members.values()))
    sales_tail, promo_tail = panel_window(panel, panel.last_day, lookback)
    history = _gathered(artifact.SeriesTable(panel.store_nbr, panel.family, sales_tail,
                                             promo_tail, panel.dates(np.array([panel.last_day]))[0]))
    zero_series = _gathered_zero_series(panel.zero_series)
    first = panel.origin
    metadata = {
        "format": artifact.FORMAT,
        "schema_version": artifact.SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "final_model": kinds[-1],
        "members": {k: {"kind": k, "path": f"members/{k}", **summaries[k]} for k in kinds},
        "lookback": lookback,
        "hyperparameters": hp.as_strings(),
        "data": {
            "start": str(first),
            "end": str(history.last_date),
            "rows": rows_in,
            "series": len(history.store_nbr) + len(zero_series),
            "trained_series": len(history.store_nbr),
            "sha256": sha256,
        },
        "split": {"train_end": str(panel.dates(np.array([split.train_end]))[0]),
                  "validation_end": str(panel.dates(np.array([split.valid_end]))[0]),
                  "test_end": str(history.last_date), "horizon": hp.horizon,
                  # The served members were fit through this day (the test end after a refit).
                  "served_fit_end": str(history.last_date if hp.refit else
                                        panel.dates(np.array([split.train_end]))[0])},
        "library_versions": _versions(),
        "training_seconds": round(time.perf_counter() - started, 3),
    }
    progress("done", 1.0)
    return TrainedModel(hp, members, kinds[-1], encoders, history, zero_series,
                        evaluation, cleaning_report, metadata, calibration)


def training_data(panel: Panel, hp: Hyperparameters, log: Callable[[str], None],
                  progress: Callable[[str, float], None]) -> tuple[TrainingData, dict]:
    """What the members learn from (the date split, the categorical codes, the zero-row
    sample) and the encoders saved with the model."""
    split = split_by_date(panel.last_day, hp.horizon)
    stores = distributed.union(np.unique(np.concatenate([
        panel.store_nbr, panel.zero_series["store_nbr"].to_numpy(np.int32)])))
    families = distributed.union(np.unique(np.concatenate([
        panel.family.astype(str), panel.zero_series["family"].to_numpy(str)])))
    store_code = np.searchsorted(stores, panel.store_nbr).astype(np.int32)
    family_code = np.searchsorted(families, panel.family.astype(str)).astype(np.int32)
    keep, weight = downsample_zeros(panel.sales, hp.zero_sample_rate, hp.seed)
    data = TrainingData(panel, split, store_code, family_code, len(stores), len(families),
                        keep, weight, hp, log, progress)
    return data, {"store_nbr": stores.tolist(), "family": families.tolist()}


def _refit(members: dict, data: TrainingData, progress: _Progress, span: tuple[float, float],
           summaries: dict) -> dict:
    """Each member fit again on all of ``data`` (see the module docstring); the hybrid is
    re-formed over the refit members. Each summary gains a ``refit`` entry."""
    refit: dict = {}
    lo, hi = span
    progress.prefix = "refit_"
    for i, (kind, member) in enumerate(members.items()):
        progress.span = (lo + (hi - lo) * i / len(members), lo + (hi - lo) * (i + 1) / len(members))
        if isinstance(member, HybridMember):
            refit[kind] = member.with_members(refit)
            summaries[kind]["refit"] = {"weights": "fit on validation, kept"}
        else:
            refit[kind], summaries[kind]["refit"] = member.refit(data)
    progress.span, progress.prefix = (0.0, 1.0), ""
    return refit


def _evaluate(panel: Panel, split, members: dict, store_code, family_code, horizon) -> dict:
    lookback = max(m.lookback for m in members.values())
    inp = panel_forecast_input(panel, split.valid_end, horizon, lookback, store_code,
                               family_code)
    forecasts: dict = {}
    for name, member in members.items():   # members come before the hybrid that blends them
        forecasts[name] = (member.combine(forecasts) if isinstance(member, HybridMember)
                           else member.forecast(inp))
    actual = np.nan_to_num(panel_window(panel, split.test_end, horizon)[0], nan=0.0)
    baseline = metrics.seasonal_naive(inp.sales, horizon)
    scale = metrics.seasonal_scale(panel.sales, panel.offsets, panel.day <= split.valid_end)
    c = distributed.concat   # every host's series (the identity on one host)
    evaluation = metrics.evaluate({name: c(f) for name, f in forecasts.items()}, c(baseline),
                                  c(actual), c(panel.family), c(scale))
    dates = panel.dates(np.array([split.valid_end, split.valid_end + 1, split.test_end]))
    return {"horizon": horizon, "origin": str(dates[0]), "test_start": str(dates[1]),
            "test_end": str(dates[2]), "series": distributed.total(int(panel.n_series)),
            **evaluation}


def _gathered(table: artifact.SeriesTable) -> artifact.SeriesTable:
    """Every host's series history, in (store_nbr, family) order (``table`` on one host)."""
    if not distributed.active():
        return table
    c = distributed.concat
    store, family = c(table.store_nbr), c(np.asarray(table.family, dtype=object))
    order = np.lexsort((family.astype(str), store))
    return artifact.SeriesTable(store[order], family[order], c(table.sales)[order],
                                c(table.promo)[order], table.last_date)


def _gathered_zero_series(zero: pd.DataFrame) -> pd.DataFrame:
    """Every host's never-selling series (``zero`` on one host)."""
    if not distributed.active():
        return zero
    frame = pd.concat(distributed.allgather(zero), ignore_index=True)
    return frame.sort_values(["store_nbr", "family"], kind="stable").reset_index(drop=True)


def _return_freed_memory() -> None:
    """Give what reading, validation and cleaning freed back to the OS, so the fit does not
    start on top of their peak (`forecasting.libc.trim`): glibc keeps freed blocks under its
    mmap threshold (which grows to 32 MB) and pyarrow's allocator keeps its own (measured at
    3M rows: 461 MB resident after cleaning, 192 MB after both releases). A no-op where either
    is missing."""
    libc.trim()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def _versions() -> dict:
    import sklearn
    import xgboost

    out = {"forecasting": __version__, "python": platform.python_version(),
           "numpy": np.__version__, "pandas": pd.__version__, "xgboost": xgboost.__version__,
           "scikit-learn": sklearn.__version__}
    if "tensorflow" in sys.modules:
        out["tensorflow"] = sys.modules["tensorflow"].__version__
    return out
