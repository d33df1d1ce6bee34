"""The embedded default backend: no Docker, no AWS.

- Training runs the container's own entrypoint, `python -m forecasting.container.train`, as a
  child process with `OPT_ML=<job_dir>/opt_ml` (the /opt/ml tree of DESIGN.md contract 2). At most
  `training_slots` jobs run at once; waiting jobs are picked fairly (a retailer with a running job
  waits behind one without). Children run at a higher niceness, so a retailer's training cannot
  starve another retailer's predictions, which run in the gateway's own prediction threads.
- Prediction uses `forecasting.predictor.Predictor` (the inference container's code) in process.
  Loaded predictors are cached (LRU); a model is loaded before it goes live.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forecast_gateway.backends.base import (
    CONTENT_TYPES,
    Backend,
    TrainingListener,
    TrainingOutcome,
    TrainingSpec,
)
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import BackendUnavailable

log = logging.getLogger("forecast_gateway.backends.local")

TRAIN_COMMAND = (sys.executable, "-m", "forecasting.container.train")
PROGRESS_RE = re.compile(r"^progress stage=(?P<stage>\S+) fraction=(?P<fraction>[-+0-9.eE]+)\s*$")
METRIC_RE = re.compile(r"^(?P<name>[A-Za-z][\w-]*(?:\.[\w-]+)+)=(?P<value>[-+0-9.eE]+|nan|inf|-inf)\s*$")
FAILURE_CHARS = 1024


@dataclass
class _Running:
    spec: TrainingSpec
    listener: TrainingListener
    process: subprocess.Popen | None = None
    cancel_requested: bool = False
    close_reason: str = ""
    killer: threading.Timer | None = None
    started: bool = field(default=False)


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
    ):
        self._train_command = list(train_command)
        self._nice = training_nice
        self._cancel_grace_s = cancel_grace_s
        self._cond = threading.Condition()
        self._pending: list[_Running] = []
        self._running: dict[str, _Running] = {}
        self._closing = False
        self._close_reason = ""
        self._workers = [
            threading.Thread(target=self._worker, name=f"train-slot-{i}", daemon=True)
            for i in range(training_slots)
        ]
        for w in self._workers:
            w.start()
        self._cache: collections.OrderedDict[Path, object] = collections.OrderedDict()
        self._cache_size = model_cache_size
        self._cache_lock = threading.Lock()
        self._load_locks: dict[Path, threading.Lock] = {}

    @classmethod
    def from_config(cls, config: GatewayConfig) -> LocalBackend:
        """Build from the gateway configuration."""
        return cls(training_slots=config.training_slots, training_nice=config.training_nice,
                   cancel_grace_s=config.cancel_grace_s, model_cache_size=config.model_cache_size)

    def describe(self) -> dict[str, object]:
        """Name and limits, for the start-up log line."""
        return {"backend": self.name, "training_slots": len(self._workers),
                "training_nice": self._nice, "model_cache_size": self._cache_size}

    # -- training ----------------------------------------------------------------------------

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        """Queue the job; a training slot picks it up."""
        with self._cond:
            if self._closing:
                raise BackendUnavailable("the gateway is stopping; no new training jobs")
            self._pending.append(_Running(spec, listener))
            self._cond.notify()

    def cancel_training(self, job_id: str) -> bool:
        """SIGTERM a running job (SIGKILL after the grace period), or drop a queued one."""
        with self._cond:
            for item in self._pending:
                if item.spec.job_id == job_id:
                    self._pending.remove(item)
                    break
            else:
                item = None
            running = self._running.get(job_id)
            if running is not None:
                running.cancel_requested = True
                self._terminate(running, self._cancel_grace_s)
                return True
        if item is not None:
            item.listener.on_finished(job_id, TrainingOutcome("cancelled", failure_reason="cancelled while queued"))
            return True
        return False

    def _terminate(self, running: _Running, grace_s: float) -> None:
        proc = running.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if running.killer is None:
            def kill() -> None:
                if proc.poll() is None:
                    log.warning("training process did not stop after SIGTERM; SIGKILL",
                                extra={"fields": {"job_id": running.spec.job_id}})
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            running.killer = threading.Timer(grace_s, kill)
            running.killer.daemon = True
            running.killer.start()

    def _next(self) -> _Running | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            busy = {r.spec.retailer for r in self._running.values()}
            item = next((p for p in self._pending if p.spec.retailer not in busy), self._pending[0])
            self._pending.remove(item)
            self._running[item.spec.job_id] = item
            return item

    def _worker(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            try:
                outcome = self._run(item)
            except Exception as exc:
                log.exception("training job crashed in the backend",
                              extra={"fields": {"job_id": item.spec.job_id}})
                outcome = TrainingOutcome("failed", failure_reason=f"backend error: {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._running.pop(item.spec.job_id, None)
                if item.killer is not None:
                    item.killer.cancel()
            try:
                item.listener.on_finished(item.spec.job_id, outcome)
            except Exception:
                log.exception("on_finished failed", extra={"fields": {"job_id": item.spec.job_id}})

    def _prepare(self, spec: TrainingSpec) -> Path:
        opt_ml = spec.job_dir / "opt_ml"
        if opt_ml.exists():
            shutil.rmtree(opt_ml)
        config_dir = opt_ml / "input" / "config"
        train_dir = opt_ml / "input" / "data" / "train"
        for d in (config_dir, train_dir, opt_ml / "model", opt_ml / "output"):
            d.mkdir(parents=True, exist_ok=True)
        (config_dir / "hyperparameters.json").write_text(
            json.dumps({k: str(v) for k, v in spec.hyperparameters.items()}, indent=2, sort_keys=True))
        (config_dir / "inputdataconfig.json").write_text(json.dumps({
            "train": {"ContentType": CONTENT_TYPES[spec.data_format], "TrainingInputMode": "File",
                      "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        }, indent=2))
        (config_dir / "resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "lo"}, indent=2))
        target = train_dir / f"train.{spec.data_format}"
        try:
            os.link(spec.data_path, target)
        except OSError:
            shutil.copyfile(spec.data_path, target)
        return opt_ml

    def _child_env(self, opt_ml: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["OPT_ML"] = str(opt_ml)
        env["PYTHONUNBUFFERED"] = "1"
        # The child imports `forecasting` from wherever the gateway does.
        import forecast_gateway

        roots = [str(Path(forecast_gateway.__file__).resolve().parent.parent)]
        try:
            import forecasting

            roots.insert(0, str(Path(forecasting.__file__).resolve().parent.parent))
        except ImportError:
            pass
        env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
        return env

    def _run(self, item: _Running) -> TrainingOutcome:
        spec, listener = item.spec, item.listener
        opt_ml = self._prepare(spec)
        log_path = spec.job_dir / "train.log"
        with self._cond:
            if item.cancel_requested or self._closing:
                return self._stopped(item)
            # The launcher renices the child and ties it to our life, then execs the command
            # (no preexec_fn: forking a multi-threaded process must go straight to exec).
            launcher = [sys.executable, "-m", "forecast_gateway.backends._launch",
                        str(self._nice), str(os.getpid()), "--", *self._train_command]
            item.process = subprocess.Popen(
                launcher, cwd=spec.job_dir, env=self._child_env(opt_ml),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, bufsize=1, errors="replace", start_new_session=True,
            )
        listener.on_started(spec.job_id)
        log.info("training process started", extra={"fields": {
            "job_id": spec.job_id, "retailer": spec.retailer, "pid": item.process.pid}})
        last_lines: collections.deque[str] = collections.deque(maxlen=5)
        with open(log_path, "a", encoding="utf-8") as out:
            assert item.process.stdout is not None
            for line in item.process.stdout:
                out.write(line)
                line = line.strip()
                if not line:
                    continue
                last_lines.append(line)
                if m := PROGRESS_RE.match(line):
                    try:
                        listener.on_progress(spec.job_id, m["stage"], min(1.0, max(0.0, float(m["fraction"]))))
                    except ValueError:
                        pass
                elif m := METRIC_RE.match(line):
                    listener.on_metric(spec.job_id, m["name"], float(m["value"]))
        code = item.process.wait()
        if item.cancel_requested or item.close_reason:
            return self._stopped(item)
        model_dir = opt_ml / "model"
        if code == 0 and model_dir.is_dir() and any(model_dir.iterdir()):
            return TrainingOutcome("succeeded", model_dir=model_dir)
        failure = opt_ml / "output" / "failure"
        reason = ""
        if failure.exists():
            reason = failure.read_text(errors="replace")[:FAILURE_CHARS].strip()
        if not reason:
            tail = last_lines[-1] if last_lines else "no output"
            reason = (f"training exited with code {code} and wrote no model: {tail}" if code == 0
                      else f"training exited with code {code}: {tail}")[:FAILURE_CHARS]
        return TrainingOutcome("failed", failure_reason=reason)

    @staticmethod
    def _stopped(item: _Running) -> TrainingOutcome:
        if item.close_reason:
            return TrainingOutcome("failed", failure_reason=item.close_reason)
        return TrainingOutcome("cancelled", failure_reason="cancelled by request")

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
                        self._cache.popitem(last=False)
        return predictor

    def load_model(self, model: ModelRef) -> None:
        """Load the artifact into the cache (ArtifactError when it cannot be loaded)."""
        self._predictor(model)

    def unload_model(self, model: ModelRef) -> None:
        """Drop the model from the cache."""
        with self._cache_lock:
            self._cache.pop(model.path, None)

    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        """Forecast with the cached Predictor (the inference container's code)."""
        predictor = self._predictor(model)
        dates = rows.day.astype("datetime64[D]")
        result = predictor.predict_columns(
            date=dates, store_nbr=rows.store_nbr, family=rows.family, onpromotion=rows.onpromotion)
        return np.asarray(result, dtype=np.float64)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Fail queued jobs, stop running ones (SIGTERM, SIGKILL after 10 s) and wait for them."""
        with self._cond:
            self._closing = True
            pending, self._pending = self._pending, []
            running = list(self._running.values())
            for item in running:
                item.close_reason = reason
                self._terminate(item, grace_s=10.0)
            self._cond.notify_all()
        for item in pending:
            item.listener.on_finished(item.spec.job_id, TrainingOutcome("failed", failure_reason=reason))
        for w in self._workers:
            w.join(timeout=15.0)
        with self._cache_lock:
            self._cache.clear()
