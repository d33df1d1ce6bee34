"""Model versions: publishing a trained artifact as the retailer's next version, making a version
live (loaded by the backend first, then switched in one registry transaction), resolving the
version a prediction uses, and the stored evaluation."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import (
    Evaluation,
    Job,
    MetricsReport,
    ModelRef,
    ModelVersion,
    Scores,
)
from forecast_gateway.errors import FailedPrecondition, InvalidArgument, NoLiveModel, NotFound
from forecasting import hyperparameters as hp_schema

log = logging.getLogger("forecast_gateway.dataplane.models")

DEFAULT_HORIZON = int(hp_schema.SPECS["horizon"].default)


def _nan(value: object) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _scores(block: dict | None) -> Scores:
    block = block or {}
    return Scores(*(_nan(block.get(k)) for k in ("rmse", "rmsle", "mae", "wape", "bias")))


def _model_record(retailer: str, version: str, path: Path, job_id: str, dataset_id: str,
                  model_kind: str, horizon: int) -> ModelVersion:
    meta: dict = {}
    meta_path = path / "artifact.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    data = meta.get("data") or {}
    hp = meta.get("hyperparameters") or {}
    return ModelVersion(
        retailer=retailer, version=version, path=path, job_id=job_id, dataset_id=dataset_id,
        model_kind=str(hp.get("model_kind") or model_kind),
        final_model=str(meta.get("final_model") or ""),
        data_start=str(data.get("start") or "")[:10], data_end=str(data.get("end") or "")[:10],
        horizon=int(hp.get("horizon") or meta.get("horizon") or horizon), created_at=time.time(),
    )


class ModelService:
    """A retailer's model versions and which one is live."""

    def __init__(self, state: SharedState):
        self._s = state
        self._publish_lock = threading.Lock()

    # -- publishing --------------------------------------------------------------------------

    def publish(self, job: Job, artifact_dir: Path, job_update: dict[str, object]) -> str:
        """Move a trained artifact into `models/<version>`, load it and make it live; the job's
        `job_update` is stored in the same registry transaction. Returns the version."""
        with self._publish_lock:
            number = self._s.registry.next_model_number(job.retailer)
            version = f"v{number}"
            dest = self._s.storage.model_dir(job.retailer, version)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(artifact_dir), str(dest))
            model = _model_record(job.retailer, version, dest, job.job_id, job.dataset_id,
                                  job.model_kind, job.horizon)
            self._s.backend.load_model(model.ref)  # loaded before it goes live
            self._make_live(model.ref, lambda: self._s.registry.add_model(
                model, number, make_live=True, job_update={**job_update, "model_version": version}))
        log.info("model version live", extra={"fields": {
            "job_id": job.job_id, "retailer": job.retailer, "model_version": version}})
        return version

    def import_model(self, tenant: Tenant, artifact_dir: Path, make_live: bool = True) -> ModelVersion:
        """Register an existing artifact directory (copied) as the retailer's next version.

        For benchmarks, migrations and operators; not exposed over the API.
        """
        retailer = tenant.retailer
        self._s.registry.ensure_retailer(retailer)
        with self._publish_lock:
            number = self._s.registry.next_model_number(retailer)
            version = f"v{number}"
            dest = self._s.storage.model_dir(retailer, version)
            shutil.copytree(artifact_dir, dest)
            model = _model_record(retailer, version, dest, "", "", "", DEFAULT_HORIZON)
            self._s.backend.load_model(model.ref)
            if make_live:
                self._make_live(model.ref, lambda: self._s.registry.add_model(
                    model, number, make_live=True))
            else:
                self._s.registry.add_model(model, number, make_live=False)
        return self._s.registry.get_model(retailer, version)  # type: ignore[return-value]

    def _make_live(self, ref: ModelRef, record: Callable[[], object]) -> None:
        """Switch the retailer's live version to `ref` (already loaded by the backend) as
        `record()` stores the switch in the registry; then let the backend free the version
        that stopped being live (requests that resolved it a moment ago are still answered)."""
        previous = self._s.live.switch(ref, record)
        if previous is not None and previous.path != ref.path:
            self._s.backend.unload_model(previous)

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, tenant: Tenant, version: str) -> ModelRef:
        """The live model (version "") or the named version of the retailer."""
        if not version:
            ref = self._s.live.get(tenant.retailer)
            if ref is not None:
                return ref
            self._s.existing(tenant)
            raise NoLiveModel(tenant.retailer)
        return self.get(tenant, version).ref

    def get(self, tenant: Tenant, version: str) -> ModelVersion:
        """The registered version (NOT_FOUND names the retailer or the version missing)."""
        self._s.existing(tenant)
        model = self._s.registry.get_model(tenant.retailer, version)
        if model is None:
            raise NotFound("model version", version)
        return model

    def list(self, tenant: Tenant) -> list[ModelVersion]:
        """The retailer's versions, newest first, the live one marked."""
        self._s.existing(tenant)
        return self._s.registry.list_models(tenant.retailer)

    def set_live(self, tenant: Tenant, version: str) -> ModelVersion:
        """Load `version`, then make it the retailer's live model."""
        if not version:
            raise InvalidArgument("model_version", "is required")
        model = self.get(tenant, version)
        self._s.backend.load_model(model.ref)
        self._make_live(model.ref, lambda: self._s.registry.set_live(tenant.retailer, version))
        log.info("model version live", extra={"fields": {
            "retailer": tenant.retailer, "model_version": version}})
        return self._s.registry.get_model(tenant.retailer, version)  # type: ignore[return-value]

    def metrics(self, tenant: Tenant, version: str) -> MetricsReport:
        """The evaluation of the live (or named) model against the baseline."""
        model = self.get(tenant, version or self.resolve(tenant, "").version)
        path = model.path / "evaluation.json"
        if not path.exists():
            raise FailedPrecondition(f"model version {model.version!r} has no evaluation.json")
        ev = json.loads(path.read_text())
        final = str(ev.get("final_model") or model.final_model)
        evaluations = [
            Evaluation(name=name, baseline=False, final=(name == final),
                       overall=_scores(block.get("overall")),
                       per_family={f: _scores(s) for f, s in (block.get("per_family") or {}).items()})
            for name, block in (ev.get("models") or {}).items()
        ]
        base = ev.get("baseline")
        if base:
            evaluations.append(Evaluation(
                name=str(base.get("name") or "baseline"), baseline=True, final=False,
                overall=_scores(base.get("overall")),
                per_family={f: _scores(s) for f, s in (base.get("per_family") or {}).items()}))
        return MetricsReport(
            model=model, horizon=int(ev.get("horizon") or model.horizon),
            origin=str(ev.get("origin") or "")[:10], test_start=str(ev.get("test_start") or "")[:10],
            test_end=str(ev.get("test_end") or "")[:10], evaluations=evaluations,
        )
