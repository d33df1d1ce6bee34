"""What monitoring keeps: served forecasts (for live accuracy), each actuals upload, the live
scores computed from them and the last drift report, in their own SQLite file
(`<data-dir>/monitoring.sqlite3`, WAL mode) so recording never contends with the registry; and
each retailer's accumulated actuals as a Parquet file beside its other data.

Bounds (docs/monitoring.md): the first forecast served per (version, series, target day) is
kept; `prune` drops target days more than `RETENTION_DAYS` before the newest actual day and
versions other than the newest `KEEP_VERSIONS`. The series recorded per retailer are capped by
the recorder (`dataplane/served.py`).

Thread-safe: one connection guarded by a lock; every method is one short transaction.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecast_gateway.sqlite_db import SqliteDb

RETENTION_DAYS = 180
KEEP_VERSIONS = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS served (
    retailer  TEXT NOT NULL,
    version   TEXT NOT NULL,
    store_nbr INTEGER NOT NULL,
    family    TEXT NOT NULL,
    day       INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    forecast  REAL NOT NULL,
    naive     REAL,
    PRIMARY KEY (retailer, version, store_nbr, family, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    retailer    TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    report      TEXT NOT NULL,
    version     TEXT NOT NULL,
    dataset_id  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS live_scores (
    retailer TEXT NOT NULL,
    version  TEXT NOT NULL,
    step     INTEGER NOT NULL,
    scores   TEXT NOT NULL,
    PRIMARY KEY (retailer, version, step)
);
CREATE TABLE IF NOT EXISTS live_daily (
    retailer TEXT NOT NULL,
    version  TEXT NOT NULL,
    day      INTEGER NOT NULL,
    scores   TEXT NOT NULL,
    PRIMARY KEY (retailer, version, day)
);
CREATE TABLE IF NOT EXISTS drift (
    retailer   TEXT PRIMARY KEY,
    checked_at REAL NOT NULL,
    report     TEXT NOT NULL
);
"""


class MonitoringStore:
    """Served forecasts, uploads, live scores and drift reports of every retailer."""

    def __init__(self, path: Path):
        self._sql = SqliteDb(path, schema=_SCHEMA)
        self._db, self._lock, self._tx = self._sql.conn, self._sql.lock, self._sql.tx

    def close(self) -> None:
        """Close the connection."""
        self._sql.close()

    # -- served forecasts --------------------------------------------------------------------

    def add_served(self, retailer: str, version: str, frame: pd.DataFrame) -> None:
        """Record forecasts (store_nbr, family, day, step, forecast, naive); the first one per
        (version, series, day) wins."""
        rows = zip(frame["store_nbr"].astype(int).tolist(), frame["family"].astype(str).tolist(),
                   frame["day"].astype(int).tolist(), frame["step"].astype(int).tolist(),
                   frame["forecast"].astype(float).tolist(),
                   [None if np.isnan(v) else v for v in frame["naive"].astype(float).tolist()])
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO served VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((retailer, version, s, f, d, st, fc, nv) for s, f, d, st, fc, nv in rows))

    def served(self, retailer: str) -> pd.DataFrame:
        """Every recorded forecast of the retailer."""
        with self._lock:
            return pd.read_sql_query(
                "SELECT version, store_nbr, family, day, step, forecast, "
                "COALESCE(naive, 'NaN') AS naive FROM served WHERE retailer = ?",
                self._db, params=(retailer,), dtype={"naive": "float64"})

    def served_count(self, retailer: str) -> int:
        """How many forecasts are recorded for the retailer."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM served WHERE retailer = ?",
                                        (retailer,)).fetchone()[0])

    def prune(self, retailer: str, newest_day: int) -> None:
        """Drop forecasts for days long past and for all but the newest versions."""
        with self._tx() as db:
            db.execute("DELETE FROM served WHERE retailer = ? AND day < ?",
                       (retailer, newest_day - RETENTION_DAYS))
            versions = [r[0] for r in db.execute(
                "SELECT DISTINCT version FROM served WHERE retailer = ?", (retailer,))]
            versions.sort(key=lambda v: int(v[1:]) if v[1:].isdigit() else 0, reverse=True)
            for old in versions[KEEP_VERSIONS:]:
                db.execute("DELETE FROM served WHERE retailer = ? AND version = ?", (retailer, old))

    # -- uploads, scores, drift --------------------------------------------------------------

    def add_upload(self, retailer: str, report: dict, version: str, dataset_id: str) -> None:
        """Remember an accepted actuals upload."""
        with self._tx() as db:
            db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?)",
                       (retailer, time.time(), json.dumps(report), version, dataset_id))

    def last_upload(self, retailer: str) -> dict | None:
        """The newest upload: uploaded_at, report, version, dataset_id."""
        with self._lock:
            row = self._db.execute(
                "SELECT uploaded_at, report, version, dataset_id FROM uploads WHERE retailer = ? "
                "ORDER BY uploaded_at DESC LIMIT 1", (retailer,)).fetchone()
        if row is None:
            return None
        return {"uploaded_at": row[0], "report": json.loads(row[1]), "version": row[2],
                "dataset_id": row[3]}

    def set_scores(self, retailer: str, by_step: pd.DataFrame, by_day: pd.DataFrame) -> None:
        """Replace the retailer's live scores: one row per version and step, and per version and
        target day."""
        with self._tx() as db:
            for table, frame, key in (("live_scores", by_step, "step"),
                                      ("live_daily", by_day, "day")):
                db.execute(f"DELETE FROM {table} WHERE retailer = ?", (retailer,))
                db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", (
                    (retailer, str(r["version"]), int(r[key]),
                     json.dumps({k: (None if pd.isna(v) else v) for k, v in r.items()
                                 if k not in ("version", key)}))
                    for r in frame.to_dict("records")))

    def scores(self, retailer: str, by: str = "step") -> dict[str, dict[int, dict]]:
        """version -> step -> scores (step 0: all steps); with by="day", version -> target day
        (days since 1970-01-01) -> scores."""
        table, key = ("live_scores", "step") if by == "step" else ("live_daily", "day")
        with self._lock:
            rows = self._db.execute(f"SELECT version, {key}, scores FROM {table} "
                                    "WHERE retailer = ?", (retailer,)).fetchall()
        out: dict[str, dict[int, dict]] = {}
        for version, k, payload in rows:
            out.setdefault(version, {})[int(k)] = json.loads(payload)
        return out

    def set_drift(self, retailer: str, report: dict) -> None:
        """Keep the retailer's latest drift report."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO drift VALUES (?, ?, ?)",
                       (retailer, time.time(), json.dumps(report)))

    def drift(self, retailer: str) -> tuple[float, dict] | None:
        """(checked_at, report) of the latest drift check."""
        with self._lock:
            row = self._db.execute("SELECT checked_at, report FROM drift WHERE retailer = ?",
                                   (retailer,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def summary(self) -> list[dict]:
        """Per retailer: the last upload time and the drift score (for the metrics exporter)."""
        with self._lock:
            uploads = dict(self._db.execute(
                "SELECT retailer, MAX(uploaded_at) FROM uploads GROUP BY retailer").fetchall())
            drift = {r: json.loads(rep).get("score") for r, rep in self._db.execute(
                "SELECT retailer, report FROM drift").fetchall()}
            live = {}
            for retailer, version, payload in self._db.execute(
                    "SELECT retailer, version, scores FROM live_scores WHERE step = 0"):
                live.setdefault(retailer, {})[version] = json.loads(payload).get("rmsle")
        return [{"retailer": r, "last_upload": uploads.get(r), "drift_score": drift.get(r),
                 "live_rmsle": live.get(r, {})} for r in sorted(set(uploads) | set(drift) | set(live))]


def read_actuals(path: Path) -> pd.DataFrame | None:
    """A retailer's accumulated actuals (None before the first upload)."""
    return pd.read_parquet(path) if path.exists() else None


def write_actuals(path: Path, frame: pd.DataFrame) -> None:
    """Replace the accumulated actuals atomically (write beside, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
