"""Shadow trials: a challenger served beside the live model until live actuals decide.

- **Start.** A job trained under promote=shadow is loaded by the backend and registered with the
  retailer's shadow pointer in the same transaction (a version already in shadow is rejected:
  "replaced"). Its trial (rule, metric, numbers) is stored on the version, in its promotion
  decision and on its job.
- **Serve.** `ShadowPredictor` (`dataplane.shadow`) forecasts the live model's requests with it,
  off the prediction path; the served recorder keeps its forecasts under its version.
- **Roll forward.** An actuals upload moves the live model's history forward (a new version);
  the challenger's is moved the same way (a new version kept in shadow), so both keep forecasting
  from the same origin.
- **Decide.** After every actuals upload has been scored, `evaluate` compares both on the cells
  both forecast (`shadow_rule`) and, once `promote_after` is satisfied, promotes the challenger
  (loaded, then made live in the transaction that clears the pointer) or rejects it (unloaded).
  The numbers are stored on both versions (each trained version and the current updates of it)
  and the challenger's promotion decision and job. Fleet-safe: evaluation holds the retailer's
  `shadow:` lock across gateways, and the pointer is cleared only if it still names the
  challenger; every shadow switch bumps the `live` counter, so replicas `follow` it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from forecast_gateway.dataplane import shadow_rule
from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.shadow import ShadowPredictor
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import Job, ModelRef, ModelVersion
from forecast_gateway.store.monitoring_store import MonitoringStore
from forecasting import promotion
from forecasting.monitoring.actuals import trained_version
from forecasting.promotion import Decision

log = logging.getLogger("forecast_gateway.dataplane.shadow_trial")


class _Overtaken(Exception):
    """Another gateway ended the trial first."""


class ShadowTrials:
    """Every retailer's shadow trial (module docstring)."""

    def __init__(self, state: SharedState, models: ModelService, store: MonitoringStore,
                 predictor: ShadowPredictor,
                 actuals: Callable[[Tenant], pd.DataFrame | None]):
        self._s, self._models, self._store = state, models, store
        self.predictor = predictor
        self._actuals = actuals
        models.shadows = self

    # -- pointers ----------------------------------------------------------------------------

    def follow(self) -> None:
        """Make this gateway's shadow pointers agree with the database (at start-up and after a
        switch on another replica): a new version in shadow is loaded into the backend first
        (one that cannot be is logged and not shadowed here), one that left is unloaded unless
        it is live now."""
        wanted = self._s.registry.shadow_versions()
        pointers = self.predictor.pointers
        for retailer in set(pointers) - set(wanted):
            self._drop(retailer)
        for retailer, version in wanted.items():
            current = pointers.get(retailer)
            if current is not None and current.version == version:
                continue
            model = self._s.registry.get_model(retailer, version)
            if model is None:
                continue
            try:
                self._models.artifacts.verify(model.ref, model)
                self._s.metrics.time_model_load(lambda m=model: self._s.backend.load_shadow(m.ref))
            except Exception:
                log.exception("a version in shadow cannot be loaded here; it is not shadowed "
                              "on this gateway", extra={"fields": {
                                  "retailer": retailer, "model_version": version}})
                continue
            self._switch(model.ref)

    def _switch(self, ref: ModelRef) -> None:
        previous = self.predictor.pointers.get(ref.retailer)
        self.predictor.pointers[ref.retailer] = ref
        if previous is not None and previous.path != ref.path:
            self._unload(previous)

    def _drop(self, retailer: str) -> None:
        previous = self.predictor.pointers.pop(retailer, None)
        if previous is not None:
            self._unload(previous)

    def _unload(self, ref: ModelRef) -> None:
        live = self._s.live.get(ref.retailer)
        self._s.backend.unload_shadow(ref, now_live=live is not None and live.path == ref.path)

    # -- start -------------------------------------------------------------------------------

    def start(self, job: Job, model: ModelVersion, number: int,
              job_update: dict[str, object]) -> None:
        """Load `model` beside the live version and register it in shadow under `job`'s rule;
        called by `ModelService.publish` under the retailer's publish lock."""
        retailer = model.retailer
        self._s.metrics.time_model_load(lambda: self._s.backend.load_shadow(model.ref))
        earlier = self._s.registry.shadow_versions().get(retailer)
        if earlier:
            self._end_replaced(retailer, earlier, model.version)
        decision = model.promotion
        assert decision is not None
        live = self._s.live.get(retailer)
        trial = {"state": "running", "challenger_version": model.version,
                 "champion_version": self._trained(live) if live else "",
                 "promote_after": shadow_rule.PromoteAfter.from_dict(job.promote_after).to_dict(),
                 "metric": promotion.promote_metric(job.hyperparameters), "days": 0, "cells": 0,
                 "champion_score": None, "challenger_score": None, "started_at": time.time(),
                 "decided_at": None, "reason": "waiting for actuals"}
        decision = replace(decision, trial=trial)
        model = replace(model, promotion=decision, trial=trial)
        self._s.registry.add_model(model, number, make_live=False,
                                   job_update={**job_update, "promotion": decision}, shadow=True)
        self._switch(model.ref)
        log.info("model version in shadow", extra={"fields": {
            "retailer": retailer, "model_version": model.version,
            "live_version": decision.champion_version}})

    def _end_replaced(self, retailer: str, version: str, by: str) -> None:
        shadow = self._s.registry.get_model(retailer, version)
        if shadow is None:
            return
        challenger = self._challenger(shadow)
        trial = dict((challenger.promotion.trial if challenger.promotion else None) or {})
        trial.update(state="rejected", decided_at=time.time(),
                     reason=f"replaced in shadow by {by} before promote_after decided")
        self._end(challenger, shadow, trial, [challenger.version, shadow.version], False)

    # -- roll forward ------------------------------------------------------------------------

    def roll_forward(self, tenant: Tenant, stage: Callable[[ModelVersion], Path]) -> None:
        """After an actuals upload moved the live model forward: move the version in shadow
        forward too (`stage(model)` stages its rolled copy). A copy that cannot be made is
        logged; the challenger then keeps forecasting from its own history end."""
        version = self._s.registry.shadow_versions().get(tenant.retailer)
        shadow = self._s.registry.get_model(tenant.retailer, version) if version else None
        if shadow is None:
            return
        staging: Path | None = None
        try:
            staging = stage(shadow)
            updated = self._models.publish_update(shadow, staging, shadow=True)
            self._switch(updated.ref)
        except Exception:
            log.warning("the version in shadow could not be moved forward by the actuals",
                        exc_info=True, extra={"fields": {"retailer": tenant.retailer,
                                                         "model_version": version}})
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    # -- decide ------------------------------------------------------------------------------

    def evaluate(self, tenant: Tenant) -> dict | None:
        """Apply promote_after to the evidence so far (after an actuals upload was scored);
        the trial afterwards, or None when no version is in shadow. A trial that cannot be
        judged now (its files unreadable, say) is logged and judged again after the next
        upload: the upload it follows has been applied and is not failed for it."""
        try:
            return self._evaluate(tenant)
        except Exception:
            log.exception("the shadow trial could not be evaluated; it is tried again after "
                          "the next actuals", extra={"fields": {"retailer": tenant.retailer}})
            return None

    def _evaluate(self, tenant: Tenant) -> dict | None:
        retailer = tenant.retailer
        if not self._s.registry.shadow_versions().get(retailer):
            return None
        self.predictor.flush()
        with self._s.registry.db.lock(f"shadow:{retailer}"):
            version = self._s.registry.shadow_versions().get(retailer)
            shadow = self._s.registry.get_model(retailer, version) if version else None
            live = self._s.live.get(retailer)
            if shadow is None or live is None:
                return None
            challenger = self._challenger(shadow)
            champion = self._trained(live)
            trial = dict((challenger.promotion.trial if challenger.promotion else None) or {})
            rule = shadow_rule.PromoteAfter.from_dict(trial.get("promote_after"))
            metric = str(trial.get("metric") or promotion.METRIC)
            pairs = shadow_rule.paired(self._store.served(retailer), self._actual_days(tenant),
                                       champion, challenger.version)
            trial.update(shadow_rule.evaluate(rule, metric, pairs), champion_version=champion)
            on = sorted({challenger.version, shadow.version, champion, live.version})
            if trial["state"] == "running":
                decided = replace(challenger.promotion, trial=trial)  # type: ignore[arg-type]
                self._s.registry.store_trial(retailer, on, trial, challenger.version, decided,
                                             challenger.job_id)
                return trial
            trial["decided_at"] = time.time()
            self._end(challenger, shadow, trial, on, trial["state"] == "promoted", pairs)
        log.info("shadow trial decided", extra={"fields": {
            "retailer": retailer, "model_version": challenger.version, "state": trial["state"],
            "cells": trial["cells"], "days": trial["days"]}})
        return trial

    def _end(self, challenger: ModelVersion, shadow: ModelVersion, trial: dict, on: list[str],
             promote: bool, pairs: pd.DataFrame | None = None) -> None:
        """Store the decided `trial`; promote: load the version in shadow and make it live in
        the same transaction, else unload it."""
        retailer = shadow.retailer
        base = challenger.promotion or Decision(policy="shadow", promoted=False)
        window = {}
        if pairs is not None and len(pairs):
            days = np.sort(pairs["day"].unique()).astype("datetime64[D]")
            window = {"window_start": str(days[0]), "window_end": str(days[-1])}
        decided = replace(base, promoted=promote, reason=trial["reason"], trial=trial,
                          champion_version=str(trial.get("champion_version") or ""),
                          champion_score=_nan(trial.get("champion_score")),
                          challenger_score=_nan(trial.get("challenger_score")),
                          metric=str(trial.get("metric") or base.metric), **window)

        def record() -> None:
            if not self._s.registry.end_shadow(retailer, shadow.version, trial, on,
                                               challenger.version, decided, challenger.job_id,
                                               make_live=shadow.version if promote else ""):
                raise _Overtaken
        try:
            if promote:
                self._models.artifacts.verify(shadow.ref, shadow)
                # live now: a no-op where several versions are loaded; on SageMaker the
                # version is deployed to the live endpoint (then its shadow endpoint goes)
                self._s.backend.load_model(shadow.ref)
                self._models.switch_live(shadow.ref, record)
                self.predictor.pointers.pop(retailer, None)
                self._s.backend.unload_shadow(shadow.ref, now_live=True)
            else:
                record()
                self._drop(retailer)
        except _Overtaken:
            log.info("the shadow trial was ended by another gateway", extra={"fields": {
                "retailer": retailer, "model_version": shadow.version}})
            return
        # The backend's model registry learns the decision as it learns the gate's (SageMaker:
        # the trained version's package is Approved when promoted, stays pending otherwise).
        self._s.backend.version_registered(replace(challenger, promotion=decided))

    def on_set_live(self, retailer: str, version: str) -> None:
        """SetLiveModel made `version` live: a trial whose challenger that is ends, promoted
        (a trial against another version goes on against the new live model)."""
        name = self._s.registry.shadow_versions().get(retailer)
        shadow = self._s.registry.get_model(retailer, name) if name else None
        made_live = self._s.registry.get_model(retailer, version)
        if shadow is None or made_live is None:
            return
        challenger = self._challenger(shadow)
        if self._trained(made_live.ref) != challenger.version:
            return
        trial = dict((challenger.promotion.trial if challenger.promotion else None) or {})
        trial.update(state="promoted", decided_at=time.time(),
                     reason=f"made live with SetLiveModel ({version}) before promote_after "
                            f"decided")
        base = challenger.promotion or Decision(policy="shadow", promoted=False)
        decided = replace(base, promoted=True, reason=trial["reason"], trial=trial)
        if self._s.registry.end_shadow(retailer, shadow.version, trial,
                                       sorted({challenger.version, shadow.version, version}),
                                       challenger.version, decided, challenger.job_id):
            self._drop(retailer)

    # -- the monitoring report ---------------------------------------------------------------

    def comparison(self, tenant: Tenant) -> dict | None:
        """The running trial (or the last decided one, stored on the live version) with
        champion vs challenger per horizon step; None when there is none."""
        retailer = tenant.retailer
        name = self._s.registry.shadow_versions().get(retailer)
        trial = None
        if name:
            shadow = self._s.registry.get_model(retailer, name)
            if shadow is not None:
                challenger = self._challenger(shadow)
                trial = challenger.promotion.trial if challenger.promotion else None
        if trial is None:    # the last decided one, on the version that trained the live one
            live = self._s.live.get(retailer)
            model = self._s.registry.get_model(retailer, self._trained(live)) if live else None
            trial = model.trial if model is not None else None
        if not trial:
            return None
        champion, challenger_v = trial["champion_version"], trial["challenger_version"]
        pairs = shadow_rule.paired(self._store.served(retailer), self._actual_days(tenant),
                                   champion, challenger_v)
        scores = self._store.scores(retailer)
        own = {"champion": {s: int(b.get("n") or 0) for s, b in scores.get(champion, {}).items()},
               "challenger": {s: int(b.get("n") or 0)
                              for s, b in scores.get(challenger_v, {}).items()}}
        return {"trial": trial, "steps": shadow_rule.by_step(pairs, own)}

    # -- helpers -----------------------------------------------------------------------------

    def _actual_days(self, tenant: Tenant) -> pd.DataFrame:
        accumulated = self._actuals(tenant)
        if accumulated is None:
            return pd.DataFrame(columns=["store_nbr", "family", "day", "sales"])
        return accumulated.assign(day=accumulated["date"].to_numpy()
                                  .astype("datetime64[D]").astype(np.int64))

    def _trained(self, ref: ModelRef) -> str:
        meta = ref.path / "artifact.json"
        return trained_version(json.loads(meta.read_text()), ref.version) if meta.exists() \
            else ref.version

    def _challenger(self, shadow: ModelVersion) -> ModelVersion:
        """The version that trained the one in shadow (itself, or what actuals moved forward)."""
        trained = self._trained(shadow.ref)
        if trained == shadow.version:
            return shadow
        return self._s.registry.get_model(shadow.retailer, trained) or shadow


def _nan(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]
