"""What monitoring keeps: served forecasts (for live accuracy), each actuals upload, the live
scores computed from them and the last drift report, in the store's database (`store.schema`);
and each retailer's accumulated actuals as a Parquet file beside its other data.

Bounds (docs/monitoring.md): the first forecast served per (version, series, target day) is
kept; `prune` drops target days more than `RETENTION_DAYS` before the newest actual day and
versions other than the newest `KEEP_VERSIONS`. The series recorded per retailer are capped by
the recorder (`dataplane/served.py`).

Thread-safe: every method is one short transaction on a pooled connection; recording writes
rows in batches (`INSERT`, duplicates skipped), one transaction per request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select

from forecast_gateway.store import schema
from forecast_gateway.store.database import Database

RETENTION_DAYS = 180
KEEP_VERSIONS = 5

_served, _uploads, _drift = schema.served, schema.uploads, schema.drift
_SCORES = {"step": schema.live_scores, "day": schema.live_daily}


class MonitoringStore:
    """Served forecasts, uploads, live scores and drift reports of every retailer."""

    def __init__(self, db: Database):
        self.db = db

    def close(self) -> None:
        """Nothing of its own to close: the database belongs to whoever opened it."""

    # -- served forecasts --------------------------------------------------------------------

    def add_served(self, retailer: str, version: str, frame: pd.DataFrame) -> None:
        """Record forecasts (store_nbr, family, day, step, forecast, naive); the first one per
        (version, series, day) wins."""
        rows = [{"retailer": retailer, "version": version, "store_nbr": s, "family": f,
                 "day": d, "step": st, "forecast": fc, "naive": nv}
                for s, f, d, st, fc, nv in zip(
                    frame["store_nbr"].astype(int).tolist(), frame["family"].astype(str).tolist(),
                    frame["day"].astype(int).tolist(), frame["step"].astype(int).tolist(),
                    frame["forecast"].astype(float).tolist(),
                    [None if np.isnan(v) else v for v in frame["naive"].astype(float).tolist()])]
        if rows:
            with self.db.write() as conn:
                conn.execute(self.db.insert_ignoring_duplicates(_served), rows)

    def served(self, retailer: str) -> pd.DataFrame:
        """Every recorded forecast of the retailer."""
        columns = ("version", "store_nbr", "family", "day", "step", "forecast", "naive")
        with self.db.read() as conn:
            rows = conn.execute(select(*(_served.c[c] for c in columns))
                                .where(_served.c.retailer == retailer)).all()
        frame = pd.DataFrame(rows, columns=list(columns))
        frame["naive"] = pd.to_numeric(frame["naive"], errors="coerce").astype("float64")
        return frame

    def served_count(self, retailer: str) -> int:
        """How many forecasts are recorded for the retailer."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(_served)
                                    .where(_served.c.retailer == retailer)).scalar_one())

    def prune(self, retailer: str, newest_day: int) -> None:
        """Drop forecasts for days long past and for all but the newest versions."""
        with self.db.write() as conn:
            conn.execute(_served.delete().where(and_(
                _served.c.retailer == retailer, _served.c.day < newest_day - RETENTION_DAYS)))
            versions = [r[0] for r in conn.execute(
                select(_served.c.version).distinct().where(_served.c.retailer == retailer))]
            versions.sort(key=lambda v: int(v[1:]) if v[1:].isdigit() else 0, reverse=True)
            if versions[KEEP_VERSIONS:]:
                conn.execute(_served.delete().where(and_(
                    _served.c.retailer == retailer,
                    _served.c.version.in_(versions[KEEP_VERSIONS:]))))

    # -- uploads, scores, drift --------------------------------------------------------------

    def add_upload(self, retailer: str, report: dict, version: str, dataset_id: str) -> None:
        """Remember an accepted actuals upload."""
        with self.db.write() as conn:
            conn.execute(_uploads.insert().values(
                retailer=retailer, uploaded_at=time.time(), report=json.dumps(report),
                version=version, dataset_id=dataset_id))

    def last_upload(self, retailer: str) -> dict | None:
        """The newest upload: uploaded_at, report, version, dataset_id."""
        with self.db.read() as conn:
            row = conn.execute(select(_uploads).where(_uploads.c.retailer == retailer)
                               .order_by(_uploads.c.uploaded_at.desc()).limit(1)).first()
        if row is None:
            return None
        return {"uploaded_at": row.uploaded_at, "report": json.loads(row.report),
                "version": row.version, "dataset_id": row.dataset_id}

    def set_scores(self, retailer: str, by_step: pd.DataFrame, by_day: pd.DataFrame) -> None:
        """Replace the retailer's live scores: one row per version and step, and per version and
        target day."""
        with self.db.write() as conn:
            for key, frame in (("step", by_step), ("day", by_day)):
                table = _SCORES[key]
                conn.execute(table.delete().where(table.c.retailer == retailer))
                rows = [{"retailer": retailer, "version": str(r["version"]), key: int(r[key]),
                         "scores": json.dumps({k: (None if pd.isna(v) else v)
                                               for k, v in r.items()
                                               if k not in ("version", key)})}
                        for r in frame.to_dict("records")]
                if rows:
                    conn.execute(table.insert(), rows)

    def scores(self, retailer: str, by: str = "step") -> dict[str, dict[int, dict]]:
        """version -> step -> scores (step 0: all steps); with by="day", version -> target day
        (days since 1970-01-01) -> scores."""
        key = "step" if by == "step" else "day"
        table = _SCORES[key]
        with self.db.read() as conn:
            rows = conn.execute(select(table.c.version, table.c[key], table.c.scores)
                                .where(table.c.retailer == retailer)).all()
        out: dict[str, dict[int, dict]] = {}
        for version, k, payload in rows:
            out.setdefault(version, {})[int(k)] = json.loads(payload)
        return out

    def set_drift(self, retailer: str, report: dict) -> None:
        """Keep the retailer's latest drift report."""
        with self.db.write() as conn:
            conn.execute(self.db.insert_or_replace(_drift, ("retailer",), {
                "retailer": retailer, "checked_at": time.time(), "report": json.dumps(report)}))

    def drift(self, retailer: str) -> tuple[float, dict] | None:
        """(checked_at, report) of the latest drift check."""
        with self.db.read() as conn:
            row = conn.execute(select(_drift.c.checked_at, _drift.c.report)
                               .where(_drift.c.retailer == retailer)).first()
        return None if row is None else (row[0], json.loads(row[1]))

    def summary(self) -> list[dict]:
        """Per retailer: the last upload time and the drift score (for the metrics exporter)."""
        scores = schema.live_scores
        with self.db.read() as conn:
            uploads = dict(conn.execute(select(_uploads.c.retailer, func.max(_uploads.c.uploaded_at))
                                        .group_by(_uploads.c.retailer)).all())
            drift = {r: json.loads(rep).get("score") for r, rep in conn.execute(
                select(_drift.c.retailer, _drift.c.report)).all()}
            live: dict = {}
            for retailer, version, payload in conn.execute(
                    select(scores.c.retailer, scores.c.version, scores.c.scores)
                    .where(scores.c.step == 0)):
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
