"""Monitoring a live model: new actuals, live accuracy and drift.

`append_actuals` checks an upload against the live model's history (`forecasting.monitoring.
actuals`), publishes the model again with its history tail moved forward (a new version with the
same members: the next forecasts start after the latest actual day without a retrain), keeps
the accumulated actuals, registers "training data + actuals" as a dataset the next Train can
use, scores the served forecasts those days settle and checks drift. Nothing is stored before
the upload has passed every check.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forecast_gateway.dataplane.datasets import DatasetService, new_id
from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.served import ServedRecorder
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import Dataset, ModelRef, ModelVersion
from forecast_gateway.store.monitoring_store import MonitoringStore, read_actuals, write_actuals
from forecasting import artifact as art
from forecasting.monitoring import actuals as actuals_lib
from forecasting.monitoring import drift as drift_lib
from forecasting.monitoring import live_accuracy

if TYPE_CHECKING:
    from forecast_gateway.dataplane.shadow_trial import ShadowTrials

log = logging.getLogger("forecast_gateway.dataplane.monitoring")

#: Days of actuals compared with the training window.
DRIFT_WINDOW_DAYS = 28
#: Days of training data the recent window is compared with.
REFERENCE_DAYS = 364
#: Live RMSLE this much above the test-window RMSLE recommends a retrain...
LIVE_DEGRADATION = 0.20
#: ...once this many served forecasts have been scored.
MIN_SCORED = 100


@dataclass
class ActualsOutcome:
    """What an accepted actuals upload did."""

    report: dict
    model_version: str
    dataset_id: str
    drift: dict | None
    retrain_recommended: bool
    evidence: list[str] = field(default_factory=list)
    shadow: dict | None = None
    """The shadow trial after this upload (`dataplane.shadow_trial`); None without one."""


@dataclass
class MonitoringReport:
    """Live accuracy per version beside its test-window scores, and the last drift check."""

    retailer: str
    live_version: str
    history_end: str
    versions: list[dict]
    last_upload: dict | None
    drift: dict | None
    drift_checked_at: float | None
    retrain_recommended: bool
    evidence: list[str]
    served_records: int
    shadow: dict | None = None
    """Champion vs challenger of the running (or last) shadow trial, per horizon step."""


class MonitoringService:
    """Actuals, live accuracy and drift for each retailer."""

    def __init__(self, state: SharedState, models: ModelService, datasets: DatasetService,
                 store: MonitoringStore, recorder: ServedRecorder):
        self._s = state
        self._models = models
        self._datasets = datasets
        self._store = store
        self.recorder = recorder
        #: Set by `ForecastService`: moved forward and judged after each upload.
        self.shadows: ShadowTrials | None = None

    def _lock(self, retailer: str):
        """One retailer's actuals lock, held across every gateway on the database: uploads for
        one retailer are applied one at a time."""
        return self._s.registry.db.lock(f"actuals:{retailer}")

    def actuals_path(self, tenant: Tenant) -> Path:
        return self._s.storage.retailer_dir(tenant.retailer) / "actuals" / "actuals.parquet"

    def _live(self, tenant: Tenant) -> ModelVersion:
        ref = self._models.resolve(tenant, "")
        return self._models.get(tenant, ref.version)

    # -- actuals -----------------------------------------------------------------------------

    def append_actuals(self, tenant: Tenant, source: Path, correct: bool) -> ActualsOutcome:
        """Check and apply an actuals file (see the module docstring)."""
        from forecasting.schema import read_table, validate_history

        frame, _ = validate_history(read_table(source))
        with self._lock(tenant.retailer):
            base = self._live(tenant)
            staging, meta, report = self._stage_rolled(tenant, base, frame, correct)  # may reject
            try:
                model = self._models.publish_update(base, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if self.shadows is not None:      # the challenger keeps the live model's origin
                self.shadows.roll_forward(
                    tenant, lambda shadow: self._stage_rolled(tenant, shadow, frame, correct)[0])
            accumulated = actuals_lib.merge_history(read_actuals(self.actuals_path(tenant)), frame)
            write_actuals(self.actuals_path(tenant), accumulated)
            base_id = meta["actuals"]["base_dataset_id"]
            # The base model's training data is read once: for the next Train's dataset and as
            # the drift check's reference.
            training = self._dataset_frame(tenant, base_id) if base_id else None
            dataset_id = self._training_dataset(tenant, base_id, training, accumulated)
            self._store.add_upload(tenant.retailer, report.as_dict(), model.version, dataset_id)
        log.info("actuals appended", extra={"fields": {
            "retailer": tenant.retailer, "rows": report.rows, "history_end": report.history_end,
            "model_version": model.version}})
        if self.shadows is not None:
            self.shadows.predictor.flush()    # the challenger's last forecasts, recorded
        self.score(tenant, accumulated)
        trial = self.shadows.evaluate(tenant) if self.shadows is not None else None
        drift = self.check_drift(tenant, accumulated=accumulated, training=training)
        monitoring = self.report(tenant, compare=False)
        return ActualsOutcome(report=report.as_dict(), model_version=model.version,
                              dataset_id=dataset_id, drift=drift,
                              retrain_recommended=monitoring.retrain_recommended,
                              evidence=monitoring.evidence, shadow=trial)

    def _stage_rolled(self, tenant: Tenant, base: ModelVersion, frame: pd.DataFrame,
                      correct: bool) -> tuple[Path, dict, actuals_lib.ActualsReport]:
        """A staged copy of `base` with its history moved forward by `frame` (the caller
        publishes it and removes the staging directory); rejects bad actuals first."""
        table = art.load_history(base.path / "history.parquet")
        zero = [tuple(k) for k in json.loads((base.path / "zero_series.json").read_text())]
        rolled, report = actuals_lib.roll_history(table, frame, correct, zero)  # may reject
        staging = self._s.storage.retailer_dir(tenant.retailer) / "staging" / new_id("actuals")
        try:
            shutil.copytree(base.path, staging)
            art.save_history(staging / "history.parquet", rolled)
            meta = json.loads((staging / "artifact.json").read_text())
            previous = meta.get("actuals") or {}
            meta["actuals"] = {
                "base_version": previous.get("base_version") or base.version,
                "base_dataset_id": previous.get("base_dataset_id") or base.dataset_id,
                "uploads": int(previous.get("uploads") or 0) + 1,
                "history_end": report.history_end,
            }
            (staging / "artifact.json").write_text(json.dumps(meta, indent=2))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, meta, report

    def with_actuals(self, tenant: Tenant, dataset: Dataset) -> tuple[Dataset, str]:
        """The dataset a Train should use: ``dataset`` itself, or, when the retailer's stored
        actuals reach past its end, ``dataset`` + every stored actual (an actual wins where both
        have a day) registered as a new dataset, and a note that says so. Only the stored
        actuals' dates are read to decide."""
        path = self.actuals_path(tenant)
        if not path.exists() or not dataset.end_date:
            return dataset, ""
        dates = pd.to_datetime(pd.read_parquet(path, columns=["date"])["date"])
        after = dates[dates > pd.Timestamp(dataset.end_date)]
        if after.empty:
            return dataset, ""
        with self._lock(tenant.retailer):
            accumulated = read_actuals(path)
            merged_id = self._training_dataset(
                tenant, dataset.dataset_id, self._dataset_frame(tenant, dataset.dataset_id),
                accumulated)
        merged = self._datasets.get(tenant, merged_id)
        note = (f"dataset {dataset.dataset_id} ends on {dataset.end_date}; "
                f"{after.dt.normalize().nunique()} days of stored actuals after it (to "
                f"{after.max():%Y-%m-%d}) were merged into dataset {merged.dataset_id}")
        log.info("train: stored actuals merged into the dataset", extra={"fields": {
            "retailer": tenant.retailer, "dataset_id": dataset.dataset_id,
            "merged_dataset_id": merged.dataset_id}})
        return merged, note

    def _dataset_frame(self, tenant: Tenant, dataset_id: str) -> pd.DataFrame:
        """A stored dataset's validated rows."""
        from forecasting.schema import read_table, validate_history

        dataset = self._datasets.get(tenant, dataset_id)
        return validate_history(read_table(self._s.dataset_file(dataset)))[0]

    def _training_dataset(self, tenant: Tenant, base_dataset_id: str,
                          history: pd.DataFrame | None, accumulated: pd.DataFrame) -> str:
        """Register "the base model's training data (`history`) + every actual" as a dataset
        for the next Train; "" when the base version has no dataset (an imported model)."""
        if not base_dataset_id or history is None:
            return ""
        base = self._datasets.get(tenant, base_dataset_id)
        merged = actuals_lib.merge_history(history, accumulated)
        tmp = self._s.storage.incoming_dir(tenant.retailer) / f"{new_id('merge')}.parquet"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            merged.to_parquet(tmp, index=False)
            name = f"{Path(base.filename).stem}+actuals.parquet"
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            return self._datasets.store(tenant, name, "parquet", tmp, digest, move=True).dataset_id
        finally:
            tmp.unlink(missing_ok=True)

    # -- live accuracy -----------------------------------------------------------------------

    def score(self, tenant: Tenant, accumulated: pd.DataFrame | None = None) -> pd.DataFrame:
        """Score every recorded forecast whose day has an actual (`accumulated`: the retailer's
        actuals, read from storage when not given); store and return the scores."""
        if accumulated is None:
            accumulated = read_actuals(self.actuals_path(tenant))
        if accumulated is None:
            return live_accuracy.score(pd.DataFrame(), pd.DataFrame())
        self.recorder.flush()
        actual = accumulated.assign(day=accumulated["date"].to_numpy()
                                    .astype("datetime64[D]").astype(np.int64))
        served = self._store.served(tenant.retailer)
        scores = live_accuracy.score(served, actual)
        self._store.set_scores(tenant.retailer, scores, live_accuracy.score(served, actual, "day"))
        self._store.prune(tenant.retailer, int(actual["day"].max()))
        return scores

    # -- drift -------------------------------------------------------------------------------

    def check_drift(self, tenant: Tenant, window_days: int = DRIFT_WINDOW_DAYS, *,
                    accumulated: pd.DataFrame | None = None,
                    training: pd.DataFrame | None = None) -> dict | None:
        """Compare the newest `window_days` of actuals with the training window; None before
        any actuals arrived. The report is kept for GetMonitoring and the metrics. An upload
        passes the actuals and the base training data it already holds (`accumulated`,
        `training`); otherwise they are read from storage."""
        if accumulated is None:
            accumulated = read_actuals(self.actuals_path(tenant))
        if accumulated is None or accumulated.empty:
            return None
        live = self._live(tenant)
        dates = accumulated["date"].to_numpy().astype("datetime64[D]")
        recent = accumulated[dates > dates.max() - np.timedelta64(window_days, "D")]
        reference = self._reference(tenant, live, training)
        report = drift_lib.compare(reference, recent)
        payload = {**{k: v for k, v in report.__dict__.items()}, "alert": report.alert,
                   "window_days": window_days}
        self._store.set_drift(tenant.retailer, payload)
        return payload

    def _reference(self, tenant: Tenant, live: ModelVersion,
                   training: pd.DataFrame | None = None) -> pd.DataFrame:
        """The last REFERENCE_DAYS of the data the live model's base was trained on (`training`,
        or read from its dataset; its history tail when that dataset is unknown)."""
        meta = json.loads((live.path / "artifact.json").read_text())
        dataset_id = (meta.get("actuals") or {}).get("base_dataset_id") or live.dataset_id
        if training is not None or dataset_id:
            frame = training if training is not None else self._dataset_frame(tenant, dataset_id)
            end = frame["date"].max()
            return frame[frame["date"] > end - pd.Timedelta(days=REFERENCE_DAYS)]
        table = art.load_history(live.path / "history.parquet")
        n, lookback = table.sales.shape
        dates = table.last_date - np.arange(lookback - 1, -1, -1).astype("timedelta64[D]")
        frame = pd.DataFrame({"date": np.tile(dates, n).astype("datetime64[ns]"),
                              "store_nbr": np.repeat(table.store_nbr, lookback),
                              "family": np.repeat(table.family.astype(str), lookback),
                              "sales": table.sales.reshape(-1),
                              "onpromotion": table.promo.reshape(-1)})
        return frame[np.isfinite(frame["sales"])]

    # -- the report --------------------------------------------------------------------------

    def report(self, tenant: Tenant, compare: bool = True) -> MonitoringReport:
        """Live accuracy per version next to its test-window scores, the last upload and drift,
        whether a retrain is recommended (with the evidence), and (`compare`) the shadow
        trial's champion vs challenger per step."""
        self._s.existing(tenant)
        ref = self._s.live.get(tenant.retailer)
        live_version = ref.version if ref is not None else ""
        live_trained = _trained(ref.path, ref.version) if ref is not None and \
            self._fetched(ref) else live_version
        scores = self._store.scores(tenant.retailer)
        daily = self._store.scores(tenant.retailer, by="day")
        versions = []
        for version in sorted(set(scores) | ({live_trained} - {""}), key=_number, reverse=True):
            model = self._s.registry.get_model(tenant.retailer, version)
            versions.append({"version": version, "live": version == live_trained,
                             "test": _test_scores(model.path)
                             if model is not None and self._fetched(model.ref) else None,
                             "live_scores": scores.get(version, {}),
                             "live_daily": daily.get(version, {})})
        drift = self._store.drift(tenant.retailer)
        evidence = []
        if drift is not None and drift[1].get("alert"):
            worst = drift[1]["drifted"][0]
            where = f"family {worst['family']!r}" if worst["family"] else "all series"
            evidence.append(f"drift: {worst['feature']} of {where} moved "
                            f"(PSI {worst['psi']:.3f} >= {drift_lib.Thresholds().alert})")
        for v in versions:
            if not v["live"]:
                continue
            overall = v["live_scores"].get(0) or {}
            test = (v["test"] or {}).get("rmsle")
            if (overall.get("n") or 0) >= MIN_SCORED and test and overall.get("rmsle") is not None \
                    and overall["rmsle"] > test * (1 + LIVE_DEGRADATION):
                evidence.append(f"live accuracy: RMSLE {overall['rmsle']:.4f} on "
                                f"{overall['n']} served forecasts vs {test:.4f} on the test "
                                f"window (more than {LIVE_DEGRADATION:.0%} worse)")
        history_end = ""
        if ref is not None and (ref.path / "history.json").exists():
            history_end = str(json.loads((ref.path / "history.json").read_text())["last_date"])
        return MonitoringReport(
            retailer=tenant.retailer, live_version=live_version, history_end=history_end,
            versions=versions, last_upload=self._store.last_upload(tenant.retailer),
            drift=drift[1] if drift else None, drift_checked_at=drift[0] if drift else None,
            retrain_recommended=bool(evidence), evidence=evidence,
            served_records=self._store.served_count(tenant.retailer),
            shadow=self.shadows.comparison(tenant)
            if compare and self.shadows is not None else None)

    def _fetched(self, ref: ModelRef) -> bool:
        """Whether a version's files are on this gateway's disk: with an artifact store, its
        cache entry is fetched when missing (one that cannot be is left out of the report and
        logged); always on the data dir."""
        if self._s.objects is None:
            return True
        try:
            self._models.artifacts.verify(ref)
        except Exception:
            log.warning("a model version's files could not be fetched for the report",
                        exc_info=True, extra={"fields": {"retailer": ref.retailer,
                                                         "model_version": ref.version}})
            return False
        return True

    def summary(self) -> list[dict]:
        """Per retailer, for the metrics exporter: live version and its live RMSLE, drift score
        and the age of the last actuals."""
        now = time.time()
        watched = {row["retailer"]: row for row in self._store.summary()}
        live = self._s.registry.live_versions()
        out = []
        for retailer in sorted(set(watched) | set(live)):
            row = watched.get(retailer) or {"live_rmsle": {}, "drift_score": None,
                                            "last_upload": None}
            version = live.get(retailer) or ""
            trained = ""
            if version:
                model = self._s.registry.get_model(retailer, version)
                trained = _trained(model.path, version) if model is not None else version
            out.append({"retailer": retailer, "live_version": version, "trained_version": trained,
                        "live_rmsle": row["live_rmsle"].get(trained),
                        "drift_score": row["drift_score"],
                        "actuals_age_s": (now - row["last_upload"]) if row["last_upload"] else None})
        return out


def _number(version: str) -> int:
    return int(version[1:]) if version[1:].isdigit() else 0


def _trained(path: Path, version: str) -> str:
    """The version that trained the artifact at `path` (`version` while its files are not on
    this gateway's disk: a cache entry not fetched yet is not remembered as such)."""
    meta_path = path / "artifact.json"
    return _trained_from(meta_path, version) if meta_path.exists() else version


@functools.lru_cache(maxsize=256)
def _trained_from(meta_path: Path, version: str) -> str:
    """From an artifact.json (artifacts never change in place)."""
    return actuals_lib.trained_version(json.loads(meta_path.read_text()), version)


def _test_scores(path: Path) -> dict | None:
    """The final model's and the baseline's test-window RMSLE/WAPE/bias from evaluation.json."""
    ev_path = path / "evaluation.json"
    if not ev_path.exists():
        return None
    ev = json.loads(ev_path.read_text())
    final = ev.get("final_model") or next(iter(ev.get("models") or {}), "")
    overall = ((ev.get("models") or {}).get(final) or {}).get("overall") or {}
    baseline = (ev.get("baseline") or {}).get("overall") or {}
    return {**overall, "baseline": baseline}
