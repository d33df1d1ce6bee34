"""The versioned model directory (what SageMaker tars into model.tar.gz).

Layout, schema version 3 (docs/artifact.md; version 2 has intervals.json in the per-step
method, version 1 has none):

    artifact.json          format, schema_version, final model, members, metadata
    features.json          XGBoost feature order and types (the headerless-CSV contract)
    encoders.json          category lists: code i of store_nbr / family is list[i]
    history.parquet        the last ``lookback`` days of every series (date, store_nbr,
                           family, sales, onpromotion): what recursive forecasts start from,
                           and (version 3) what each series' interval band is measured on
    history.json           the series order, the last date and the lookback of that table
    zero_series.json       series that never sold: forecast as 0
    evaluation.json        test-split scores of each member and the baseline, and the
                           prediction intervals' coverage
    intervals.json         the conformal calibration of the prediction intervals (version 2:
                           per horizon step; version 3: per series variability and forecast
                           level, ``forecasting.intervals``)
    cleaning_report.json   every repair made to the input data
    members/<name>/        one directory per member (member.json + its own files)

Loading checks the format name and schema version, and names the file that is missing or
damaged, so a foreign, too old or too new, or corrupt artifact fails with a clear message.
Versions in ``READABLE_VERSIONS`` load; a version-1 artifact answers point forecasts only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting import features
from forecasting.errors import ArtifactError
from forecasting.forecast import SeriesLookup

FORMAT = "retail-forecast-artifact"
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
REQUIRED_FILES = ("artifact.json", "encoders.json", "history.parquet", "history.json",
                  "zero_series.json",
                  "evaluation.json", "cleaning_report.json", "features.json")
#: Files a version adds to REQUIRED_FILES.
REQUIRED_FROM_VERSION = {2: ("intervals.json",)}


@dataclass
class SeriesTable:
    """Series a model knows, with their recent history (rows are series)."""

    store_nbr: np.ndarray
    family: np.ndarray
    sales: np.ndarray          # (n, lookback), NaN before a series began
    promo: np.ndarray          # (n, lookback)
    last_date: np.datetime64


def write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default))


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    return str(value)


def save_history(path: Path, table: SeriesTable) -> None:
    n, lookback = table.sales.shape
    dates = table.last_date - np.arange(lookback - 1, -1, -1).astype("timedelta64[D]")
    frame = pd.DataFrame({
        "date": np.tile(dates, n).astype("datetime64[ns]"),
        "store_nbr": np.repeat(table.store_nbr, lookback).astype(np.int32),
        "family": np.repeat(table.family.astype(str), lookback),
        "sales": table.sales.reshape(-1),
        "onpromotion": table.promo.reshape(-1).astype(np.int32),
    })
    frame = frame[np.isfinite(frame["sales"].to_numpy())]
    frame.to_parquet(path, index=False)
    meta = {"last_date": str(table.last_date), "lookback": lookback,
            "series": [[int(s), str(f)] for s, f in zip(table.store_nbr, table.family)]}
    write_json(path.with_suffix(".json"), meta)


def load_history(path: Path) -> SeriesTable:
    meta = read_json(path.with_suffix(".json"))
    lookback = int(meta["lookback"])
    last_date = np.datetime64(meta["last_date"], "D")
    series = meta["series"]
    store = np.array([s for s, _ in series], dtype=np.int32)
    family = np.array([f for _, f in series], dtype=object)
    sales = np.full((len(series), lookback), np.nan)
    promo = np.zeros((len(series), lookback), dtype=np.int32)
    frame = pd.read_parquet(path)
    if len(frame):
        index = pd.MultiIndex.from_arrays([store, family.astype(str)])
        rows = index.get_indexer(pd.MultiIndex.from_arrays(
            [frame["store_nbr"].to_numpy(), frame["family"].astype(str).to_numpy()]))
        cols = (lookback - 1 - (last_date - frame["date"].to_numpy().astype("datetime64[D]"))
                .astype(np.int64))
        ok = (rows >= 0) & (cols >= 0) & (cols < lookback)
        sales[rows[ok], cols[ok]] = frame["sales"].to_numpy()[ok]
        promo[rows[ok], cols[ok]] = frame["onpromotion"].to_numpy()[ok]
    return SeriesTable(store, family, sales, promo, last_date)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"model artifact is incomplete: {path.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"model artifact is damaged: {path.name} is not valid JSON "
                            f"({exc})") from None


def check(model_dir: str | os.PathLike) -> dict:
    """Validate the directory's identity and version; return artifact.json."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ArtifactError(f"model directory {str(root)!r} does not exist")
    if not (root / "artifact.json").exists():
        found = ", ".join(sorted(p.name for p in root.iterdir())[:8]) or "nothing"
        raise ArtifactError(f"{str(root)!r} is not a retail-forecast model: artifact.json is "
                            f"missing (found: {found})")
    meta = read_json(root / "artifact.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{str(root)!r} is not a retail-forecast model "
                            f"(format {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("schema_version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_VERSIONS[:-1]) + \
            f" and {READABLE_VERSIONS[-1]}"
        raise ArtifactError(f"model artifact schema version {version!r} is not supported "
                            f"(this library reads versions {readable}); retrain the model")
    added = [name for v, names in REQUIRED_FROM_VERSION.items() if version >= v for name in names]
    for name in (*REQUIRED_FILES, *added):
        if not (root / name).exists():
            raise ArtifactError(f"model artifact is incomplete: {name} is missing")
    for name in meta.get("members", {}):
        if not (root / "members" / name / "member.json").exists():
            raise ArtifactError(f"model artifact is incomplete: members/{name}/member.json "
                                f"is missing")
    return meta


def features_manifest(feature_set: features.FeatureSet) -> dict:
    """features.json: the order and types of the ready-feature-row contract (the XGBoost
    member's features)."""
    return {
        "features": list(feature_set.names),
        "types": list(feature_set.types),
        "categorical_encoding": "store_nbr and family are codes: the position of the value "
                                "in encoders.json",
        "target": "lags and rolling means are on the model's target scale "
                  "(log1p(sales) when log_target is true)",
    }


@dataclass(frozen=True)
class SeriesIndex:
    """The series a model answers for and the day its history ends, read from history.json,
    zero_series.json and artifact.json without loading the members: what a "next N days"
    request is built from where the model itself is served elsewhere."""

    series: pd.DataFrame          # store_nbr, family: series with history, then never sold
    last_date: np.datetime64
    horizon: int                  # the horizon the model was trained and calibrated for
    lookup: SeriesLookup


def series_index(model_dir: str | os.PathLike) -> SeriesIndex:
    """The artifact's ``SeriesIndex`` (``ArtifactError`` when its files are missing)."""
    root = Path(model_dir)
    meta = read_json(root / "artifact.json")
    history = read_json(root / "history.json")
    zero = read_json(root / "zero_series.json")
    store = np.array([int(s) for s, _ in history["series"]], dtype=np.int64)
    family = np.array([str(f) for _, f in history["series"]], dtype=str)
    zero_store = np.array([int(s) for s, _ in zero], dtype=np.int64)
    zero_family = np.array([str(f) for _, f in zero], dtype=str)
    series = pd.DataFrame({"store_nbr": np.concatenate([store, zero_store]),
                           "family": np.concatenate([family, zero_family]).astype(object)})
    horizon = int((meta.get("split") or {}).get("horizon") or
                  (meta.get("hyperparameters") or {}).get("horizon") or 16)
    return SeriesIndex(series, np.datetime64(history["last_date"], "D"), horizon,
                       SeriesLookup.build(store, family, zero_store, zero_family))
