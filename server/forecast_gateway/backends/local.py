"""The embedded default backend: no Docker, no AWS.

- Training runs the container's own entrypoint, `python -m forecasting.container.train`, as a
  child process with `OPT_ML=<job_dir>/opt_ml` (the /opt/ml tree of docs/contracts.md contract 2, built
  and read by `opt_ml`). At most `training_slots` jobs run at once; waiting jobs are picked fairly
  (`training_queue`: a retailer with a running job waits behind one without). Children run at a
  higher niceness, so a retailer's training cannot starve another retailer's predictions, which
  run in the gateway's own prediction threads. Cancelling is SIGTERM to the child's process
  group, SIGKILL after the grace period.
- Prediction uses `forecasting.predictor.Predictor` (the inference container's code) in process.
  Loaded predictors are cached (LRU); a model is loaded before it goes live.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast_gateway.backends import opt_ml
from forecast_gateway.backends.base import Backend, TrainingListener, TrainingOutcome, TrainingSpec
from forecast_gateway.backends.pythonpath import child_pythonpath
from forecast_gateway.backends.training_queue import QueuedJob, TrainingQueue
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import ModelRef, RowColumns
from forecasting.container.env import OPT_ML_VAR
from forecasting.wide import WideForecasts

log = logging.getLogger("forecast_gateway.backends.local")

TRAIN_COMMAND = (sys.executable, "-m", "forecasting.container.train")


@dataclass(eq=False)
class _LocalJob(QueuedJob):
    killer: threading.Timer | None = None
    """SIGKILLs the process group when SIGTERM was not enough (one per job)."""


class LocalBackend(Backend):
    """Training in child processes, prediction in process. See the module docstring."""

    name = "local"

    def __init__(
        self,
        *,
        training_slots: int = 1,
        training_nice: int = 10,
        cancel_grace_s: float = 120.0,
        model_cache_size: int = 8,
        train_command: Sequence[str] = TRAIN_COMMAND,
        wide_predict_threads: int = 1,
        wide_predict_series: int = 512,
    ):
        self._train_command = list(train_command)
        self._nice = training_nice
        self._jobs: TrainingQueue[_LocalJob] = TrainingQueue(
            self._run, self._terminate, release=self._release, slots=training_slots,
            cancel_grace_s=cancel_grace_s, log=log, thread_name="train-slot")
        self._cache: collections.OrderedDict[Path, object] = collections.OrderedDict()
        self._cache_size = model_cache_size
        self._cache_lock = threading.Lock()
        self._load_locks: dict[Path, threading.Lock] = {}
        # Helper threads a large forecast splits its series across (forecasting.wide).
        self._wide = WideForecasts(wide_predict_threads, wide_predict_series)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> LocalBackend:
        """Build from the gateway configuration."""
        return cls(training_slots=config.training_slots, training_nice=config.training_nice,
                   cancel_grace_s=config.cancel_grace_s, model_cache_size=config.model_cache_size,
                   wide_predict_threads=config.wide_predict_threads,
                   wide_predict_series=config.wide_predict_series)

    def describe(self) -> dict[str, object]:
        """Name and limits, for the start-up log line."""
        return {"backend": self.name, "training_slots": self._jobs.slots,
                "training_nice": self._nice, "model_cache_size": self._cache_size}

    # -- training ----------------------------------------------------------------------------

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        """Queue the job; a training slot picks it up."""
        self._jobs.submit(_LocalJob(spec, listener))

    def training_capacity(self) -> int:
        """Free slots of its training queue."""
        return self._jobs.free_slots()

    def cancel_training(self, job_id: str) -> bool:
        """SIGTERM a running job (SIGKILL after the grace period), or drop a queued one."""
        return self._jobs.cancel(job_id)

    def _run(self, job: _LocalJob) -> TrainingOutcome:
        return opt_ml.run(job, lambda tree: self._launch(job, tree), network_interface="lo",
                          describe_exit=_describe_exit)

    def _launch(self, job: _LocalJob, tree: Path) -> subprocess.Popen:
        # The launcher renices the child and ties it to our life, then execs the command
        # (no preexec_fn: forking a multi-threaded process must go straight to exec).
        launcher = [sys.executable, "-m", "forecast_gateway.backends._launch",
                    str(self._nice), str(os.getpid()), "--", *self._train_command]
        process = subprocess.Popen(
            launcher, cwd=job.spec.job_dir, env=self._child_env(tree),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, errors="replace", start_new_session=True,
        )
        log.info("training process started", extra={"fields": {
            "job_id": job.spec.job_id, "retailer": job.spec.retailer, "pid": process.pid}})
        return process

    def _terminate(self, job: _LocalJob, grace_s: float) -> None:
        """SIGTERM the job's process group; SIGKILL it when it still runs after `grace_s`."""
        proc = job.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if job.killer is None:
            def kill() -> None:
                if proc.poll() is None:
                    log.warning("training process did not stop after SIGTERM; SIGKILL",
                                extra={"fields": {"job_id": job.spec.job_id}})
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            job.killer = threading.Timer(grace_s, kill)
            job.killer.daemon = True
            job.killer.start()

    @staticmethod
    def _release(job: _LocalJob) -> None:
        if job.killer is not None:
            job.killer.cancel()

    @staticmethod
    def _child_env(opt_ml_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env[OPT_ML_VAR] = str(opt_ml_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH"))  # the gateway's own code
        return env

    # -- prediction --------------------------------------------------------------------------

    def _predictor(self, model: ModelRef):
        key = model.path
        with self._cache_lock:
            predictor = self._cache.get(key)
            if predictor is not None:
                self._cache.move_to_end(key)
                return predictor
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:  # one load per model, other models load in parallel
            with self._cache_lock:
                predictor = self._cache.get(key)
            if predictor is None:
                from forecasting.predictor import Predictor

                started = time.perf_counter()
                predictor = Predictor.load(model.path)
                log.info("model loaded", extra={"fields": {
                    "retailer": model.retailer, "model_version": model.version,
                    "seconds": round(time.perf_counter() - started, 3)}})
                with self._cache_lock:
                    self._cache[key] = predictor
                    while len(self._cache) > self._cache_size:
                        self._forget(next(iter(self._cache)))
        return predictor

    def _forget(self, key: Path) -> None:
        """Drop a cached model and its load lock (unless a load holds it). Under _cache_lock."""
        self._cache.pop(key, None)
        lock = self._load_locks.get(key)
        if lock is not None and not lock.locked():
            del self._load_locks[key]

    def warm_up(self) -> None:
        """Import the predictor and XGBoost (about 1 s) before the first model needs them."""
        import xgboost  # noqa: F401

        from forecasting.predictor import Predictor  # noqa: F401

    def load_model(self, model: ModelRef) -> None:
        """Load the artifact into the cache (ArtifactError when it cannot be loaded)."""
        self._predictor(model)

    def unload_model(self, model: ModelRef) -> None:
        """Drop the model from the cache (a later request loads it again)."""
        with self._cache_lock:
            self._forget(model.path)

    def predict_intervals(self, model: ModelRef, rows: RowColumns, levels: Sequence[float],
                          ) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
        """Forecasts and interval bounds from the cached Predictor."""
        return self._predictor(model).predict_intervals(
            date=rows.day.astype("datetime64[D]"), store_nbr=rows.store_nbr, family=rows.family,
            onpromotion=rows.onpromotion, levels=levels, wide=self._wide)

    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        """Forecast with the cached Predictor (the inference container's code)."""
        predictor = self._predictor(model)
        dates = rows.day.astype("datetime64[D]")
        result = predictor.predict_columns(
            date=dates, store_nbr=rows.store_nbr, family=rows.family, onpromotion=rows.onpromotion,
            wide=self._wide)
        return np.asarray(result, dtype=np.float64)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Fail queued jobs, stop running ones (SIGTERM, SIGKILL after 10 s) and wait for them."""
        self._jobs.close(reason)
        with self._cache_lock:
            self._cache.clear()
        self._wide.close()


def _describe_exit(code: int, tail: str) -> str:
    if code == 0:
        return f"training exited with code 0 and wrote no model: {tail}"
    return f"training exited with code {code}: {tail}"
