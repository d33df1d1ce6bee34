"""Model versions: publishing a trained artifact as the retailer's next version, making a version
live (loaded by the backend first, then switched in one registry transaction), resolving the
version a prediction uses, and the stored evaluation."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from forecast_gateway.dataplane.artifacts import ArtifactStore
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import (
    Coverage,
    Evaluation,
    Job,
    MetricsReport,
    ModelRef,
    ModelVersion,
    Scores,
)
from forecast_gateway.errors import FailedPrecondition, InvalidArgument, NoLiveModel, NotFound
from forecasting import hyperparameters as hp_schema
from forecasting import promotion
from forecasting.promotion import ChampionScore, Decision

if TYPE_CHECKING:
    from forecast_gateway.dataplane.shadow_trial import ShadowTrials

log = logging.getLogger("forecast_gateway.dataplane.models")

DEFAULT_HORIZON = int(hp_schema.SPECS["horizon"].default)


def _nan(value: object) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _scores(block: dict | None) -> Scores:
    block = block or {}
    return Scores(*(_nan(block.get(k)) for k in ("rmse", "rmsle", "mae", "wape", "bias",
                                                 "mase")))


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
        self.artifacts = ArtifactStore(state.storage, state.registry, state.objects)
        #: Set by `ShadowTrials`: promote=shadow versions, their pointers and trials.
        self.shadows: ShadowTrials | None = None

    # -- publishing --------------------------------------------------------------------------

    def _publishing(self, retailer: str):
        """One retailer's publish lock, held across every gateway on the database: its version
        numbers are handed out one at a time, while other retailers publish in parallel (a
        SageMaker endpoint deploy takes minutes)."""
        return self._s.registry.db.lock(f"publish:{retailer}")

    def follow_live(self) -> None:
        """Make this gateway's live pointers agree with the database after a switch on another
        replica: each changed live version is loaded into the backend first (a version that
        cannot be loaded keeps the previous one serving here, and is logged)."""
        for retailer, version in self._s.registry.live_versions().items():
            current = self._s.live.get(retailer)
            if current is None or current.version != version:
                self._follow(retailer, version)
        if self.shadows is not None:
            self.shadows.follow()

    def _follow(self, retailer: str, version: str) -> ModelRef | None:
        """Load `version` and make it live here; None when it cannot be (logged)."""
        model = self._s.registry.get_model(retailer, version)
        if model is None:
            return None
        try:
            self.artifacts.verify(model.ref, model)
            self._s.metrics.time_model_load(lambda m=model: self._s.backend.load_model(m.ref))
        except Exception:
            log.exception("a live version switched on another gateway cannot be loaded "
                          "here; the previous one keeps serving", extra={"fields": {
                              "retailer": retailer, "model_version": version}})
            return None
        self._make_live(model.ref, lambda: None)
        log.info("live version followed from the database", extra={"fields": {
            "retailer": retailer, "model_version": version}})
        return model.ref

    def publish(self, job: Job, artifact_dir: Path, job_update: dict[str, object],
                decision: Decision | None = None) -> str:
        """Install a trained artifact as the retailer's next version (staged, renamed into
        `models/<version>`, then recorded with its manifest; see `artifacts.py`), loaded before
        it goes live — unless the promotion `decision` keeps the live model; the job's
        `job_update` is stored in the same registry transaction. Returns the version."""
        live = decision is None or decision.promoted
        with self._publishing(job.retailer):
            model, number = self._install(job.retailer, artifact_dir, True, job.job_id,
                                          job.dataset_id, job.model_kind, job.horizon)
            model = replace(model, promotion=decision)
            update = {**job_update, "model_version": model.version}
            if live:
                self._commit(model, lambda: self._make_live(model.ref, lambda: self._s.registry.add_model(
                    model, number, make_live=True, job_update=update)))
            elif decision.policy == "shadow" and self.shadows is not None:  # loaded, then served
                shadows = self.shadows                                 # beside the live model
                self._commit(model, lambda: shadows.start(job, model, number, update),
                             load=False)
            else:  # kept off the backend too: SetLiveModel loads it if it is ever promoted
                self._commit(model, lambda: self._s.registry.add_model(
                    model, number, make_live=False, job_update=update), load=False)
        log.info("model version live" if live else "model version registered, not live",
                 extra={"fields": {"job_id": job.job_id, "retailer": job.retailer,
                                   "model_version": model.version}})
        self._s.backend.version_registered(model)   # its model registry, if it has one
        return model.version

    def import_model(self, tenant: Tenant, artifact_dir: Path, make_live: bool = True) -> ModelVersion:
        """Register an existing artifact directory (copied) as the retailer's next version.

        For benchmarks, migrations and operators; not exposed over the API.
        """
        retailer = tenant.retailer
        self._s.registry.ensure_retailer(retailer)
        with self._publishing(retailer):
            model, number = self._install(retailer, artifact_dir, False, "", "", "", DEFAULT_HORIZON)
            if make_live:
                self._commit(model, lambda: self._make_live(model.ref, lambda: self._s.registry.add_model(
                    model, number, make_live=True)))
            else:
                self._commit(model, lambda: self._s.registry.add_model(model, number, make_live=False),
                             load=False)
        return self._s.registry.get_model(retailer, model.version)  # type: ignore[return-value]

    def publish_update(self, base: ModelVersion, artifact_dir: Path,
                       shadow: bool = False) -> ModelVersion:
        """Install `artifact_dir` (moved) as the next version of `base`'s retailer, with `base`'s
        provenance (same job, dataset and kind: an update such as a history moved forward by
        actuals), and make it live (with `shadow`: the version in shadow instead)."""
        with self._publishing(base.retailer):
            model, number = self._install(base.retailer, artifact_dir, True, base.job_id,
                                          base.dataset_id, base.model_kind, base.horizon)
            if shadow:   # loaded beside the live version (its own endpoint on SageMaker)
                def record() -> None:
                    self._s.metrics.time_model_load(lambda: self._s.backend.load_shadow(model.ref))
                    self._s.registry.add_model(model, number, make_live=False, shadow=True)
                self._commit(model, record, load=False)
            else:
                self._commit(model, lambda: self._make_live(model.ref, lambda: self._s.registry.add_model(
                    model, number, make_live=True)))
        log.info("model version live", extra={"fields": {
            "retailer": base.retailer, "model_version": model.version, "updated_from": base.version}})
        return self._s.registry.get_model(base.retailer, model.version)  # type: ignore[return-value]

    def _install(self, retailer: str, source: Path, move: bool, job_id: str, dataset_id: str,
                 model_kind: str, horizon: int) -> tuple[ModelVersion, int]:
        """Stage `source` and rename it into `models/<next version>` (not yet recorded)."""
        staged, files = self.artifacts.stage(retailer, source, move)
        number = self._s.registry.next_model_number(retailer)
        version = f"v{number}"
        try:
            dest = self.artifacts.install(staged, retailer, version, files)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        model = replace(_model_record(retailer, version, dest, job_id, dataset_id, model_kind,
                                      horizon), manifest=files)
        return model, number

    def _commit(self, model: ModelVersion, record: Callable[[], object], load: bool = True) -> None:
        """Load the installed version (when it is to go live), then `record()` it; if either
        fails, the directory leaves `models/` so the version name is free for the next publish."""
        try:
            if load:
                self._s.metrics.time_model_load(lambda: self._s.backend.load_model(model.ref))
            record()
        except BaseException:
            self.artifacts.discard(model.path, model.retailer, "its publish failed")
            raise

    def switch_live(self, ref: ModelRef, record: Callable[[], object]) -> None:
        """`_make_live` for a version already loaded (a shadow trial's promotion)."""
        self._make_live(ref, record)

    def _make_live(self, ref: ModelRef, record: Callable[[], object]) -> None:
        """Switch the retailer's live version to `ref` (already loaded by the backend) as
        `record()` stores the switch in the registry; then let the backend free the version
        that stopped being live (requests that resolved it a moment ago are still answered)."""
        previous = self._s.live.switch(ref, record)
        if previous is not None and previous.path != ref.path:
            self._s.backend.unload_model(previous)

    def promotion_for(self, job: Job, artifact_dir: Path) -> Decision:
        """The promotion gate's decision for a finished job's artifact under the job's policy
        (`forecasting.promotion`): under if_better the live model is scored on the new test
        window by the job's `promote_metric`; under always only its history end is read (the
        reason says when the new model's history ends before it). A live model that cannot be
        read never costs the new version: it is promoted and the reason says why."""
        challenger = json.loads((artifact_dir / "evaluation.json").read_text())
        champion: ChampionScore | None = None
        metric = promotion.promote_metric(job.hyperparameters)
        live = self._s.live.get(job.retailer) if job.promote != "never" else None
        if live is not None:
            dataset = self._s.registry.get_dataset(job.retailer, job.dataset_id)
            try:
                self.artifacts.verify(live)   # on a replica with an artifact store: fetched
                champion = (promotion.unscored(live.version, live.path, f"promote={job.promote}")
                            if job.promote in ("always", "shadow") else
                            promotion.champion_score(live.version, live.path, challenger,
                                                     self._s.dataset_file(dataset)
                                                     if dataset else None, metric))
            except Exception as exc:  # reported in the decision, logged here
                log.warning("the live model could not be scored for the promotion gate",
                            exc_info=True, extra={"fields": {"job_id": job.job_id}})
                champion = ChampionScore(live.version, float("nan"),
                                         f"it could not be read ({type(exc).__name__}: {exc})")
        return promotion.decide(job.promote, challenger, champion, metric)

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, tenant: Tenant, version: str) -> ModelRef:
        """The live model (version "") or the named version of the retailer, its files checked
        against the manifest recorded at publish (ArtifactError when they differ)."""
        if not version:
            ref = self._s.live.get(tenant.retailer)
            if ref is not None:
                self.artifacts.verify(ref)
                return ref
            self._s.existing(tenant)
            # The retailer's first model went live on another replica since this one last
            # looked: load it now rather than refuse until the next poll.
            version = self._s.registry.live_version(tenant.retailer)
            ref = self._follow(tenant.retailer, version) if version else None
            if ref is None:
                raise NoLiveModel(tenant.retailer)
            return ref
        model = self.get(tenant, version)
        self.artifacts.verify(model.ref, model)
        return model.ref

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
        self.artifacts.verify(model.ref, model)
        self._s.metrics.time_model_load(lambda: self._s.backend.load_model(model.ref))
        self._make_live(model.ref, lambda: self._s.registry.set_live(tenant.retailer, version))
        if self.shadows is not None:    # the version in shadow made live ends its trial
            self.shadows.on_set_live(tenant.retailer, version)
        log.info("model version live", extra={"fields": {
            "retailer": tenant.retailer, "model_version": version}})
        return self._s.registry.get_model(tenant.retailer, version)  # type: ignore[return-value]

    def set_approval(self, tenant: Tenant, version: str, approval: str,
                     description: str) -> tuple[ModelVersion, str]:
        """Approve, reject or reset `version` in the backend's model registry (FAILED_PRECONDITION
        from a backend without one); returns the version and where the registry keeps it."""
        if not version:
            raise InvalidArgument("model_version", "is required")
        if len(description) > 1000:
            raise InvalidArgument("description", f"{len(description)} characters, at most 1000")
        model = self.get(tenant, version)
        self.artifacts.verify(model.ref, model)
        entry = self._s.backend.set_approval(model.ref, approval, description)
        log.info("model version approval set", extra={"fields": {
            "retailer": tenant.retailer, "model_version": version, "approval": approval,
            "registry_entry": entry}})
        return model, entry

    def metrics(self, tenant: Tenant, version: str) -> MetricsReport:
        """The evaluation of the live (or named) model against the baseline."""
        model = self.get(tenant, version or self.resolve(tenant, "").version)
        self.artifacts.verify(model.ref, model)
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
            coverage=[Coverage(float(c["level"]), float(c["coverage"]), float(c["mean_width"]),
                               _nan(c.get("mean_interval_score")),
                               {k: float(v) for k, v in (c.get("coverage_per_third") or {})
                                .items()})
                      for c in ((ev.get("intervals") or {}).get("coverage") or {}).values()],
        )
