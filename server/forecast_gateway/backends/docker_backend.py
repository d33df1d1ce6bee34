"""The docker backend (`--backend docker`): the real images, run the way SageMaker runs them.

- Training: the job's /opt/ml tree (`<job_dir>/opt_ml`: hyperparameters.json,
  inputdataconfig.json, resourceconfig.json, the `train` channel) is mounted into
  `docker run --rm <training image> train`. `opt_ml` builds the tree, reads the progress and
  metric lines from the container's output and decides the outcome from the exit code and
  `/opt/ml/output/failure`; `training_queue` schedules the jobs, as for the local backend. On
  success the model directory is packaged as `<job_dir>/output/model.tar.gz` (what SageMaker
  uploads to S3) and the extracted directory is handed to the gateway, which moves it into its
  storage.
  Cancelling is `docker stop -t <cancel_grace_s>`: SIGTERM, SIGKILL after the grace period.
- Prediction: one inference container per model version (`docker run -d <inference image>
  serve`, the artifact directory mounted read-only at /opt/ml/model, port 8080 published on
  127.0.0.1). `load_model` returns only once `GET /ping` answers, so a version never goes live
  before its container is ready. `predict` POSTs columnar JSON to `/invocations` in chunks
  under the 6 MB body limit.
- Replacing a version: the new container starts and answers /ping first (`load_model`); the
  gateway switches the live version, then calls `unload_model` on the old one, which retires
  its container. A retired container keeps answering the requests that resolved the old
  version just before the switch, and is stopped (SIGTERM, gunicorn drains) `drain_s` after
  its last request finished. Containers beyond `model_cache_size` are retired least recently
  used first; every container is removed on `close`. `docker_containers.InferenceContainers`
  keeps them; this module sends the requests.

The gateway reaches the containers on 127.0.0.1 and mounts paths of its own disk, so it runs on
the Docker host itself (not inside a container with the socket mounted).

Its settings are `GatewayConfig`'s `docker_*` fields (FORECAST_GATEWAY_DOCKER_*), gathered in
`DockerSettings`.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast_gateway.backends import opt_ml
from forecast_gateway.backends.base import Backend, TrainingListener, TrainingOutcome, TrainingSpec
from forecast_gateway.backends.docker_containers import InferenceContainers, Server
from forecast_gateway.backends.training_queue import QueuedJob, TrainingQueue
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import BackendUnavailable
from forecasting.container.env import MAX_BODY_BYTES
from forecasting.container.invocations import decode_error, error_message, request_body
from forecasting.errors import ForecastRequestError

log = logging.getLogger("forecast_gateway.backends.docker")

LABEL = "com.retail-forecast.backend"  # on every container this backend starts


@dataclass(frozen=True)
class DockerSettings:
    """The docker backend's own settings: the `docker_*` fields of `GatewayConfig` (flags
    `--docker-*`, variables FORECAST_GATEWAY_DOCKER_*), read and validated there."""

    training_image: str
    """The image run as `IMAGE train`."""
    inference_image: str
    """The image run as `IMAGE serve`."""
    docker: str
    """The docker command."""
    ping_timeout_s: float
    """How long a new container may take to answer /ping."""
    request_timeout_s: float
    """One /invocations call (the contract's 60 s + slack)."""
    drain_s: float
    """A retired container is stopped this long after its last request (requests already
    routed to it finish first)."""
    serve_workers: int
    """Gunicorn workers per inference container."""
    max_body_bytes: int
    """Largest /invocations body sent (the chunking limit; at most the contract's 6 MB)."""

    @classmethod
    def from_config(cls, config: GatewayConfig) -> DockerSettings:
        return cls(
            training_image=config.docker_training_image,
            inference_image=config.docker_inference_image,
            docker=config.docker_cli,
            ping_timeout_s=config.docker_ping_timeout_s,
            request_timeout_s=config.docker_request_timeout_s,
            drain_s=config.docker_drain_s,
            serve_workers=config.docker_serve_workers,
            max_body_bytes=min(config.docker_max_body_bytes, MAX_BODY_BYTES),
        )


class DockerBackend(Backend):
    """Training and prediction in the real containers. See the module docstring."""

    name = "docker"

    def __init__(self, settings: DockerSettings, *, training_slots: int = 1,
                 cancel_grace_s: float = 120.0, model_cache_size: int = 8):
        self.settings = settings
        self._instance = uuid.uuid4().hex[:8]
        self._jobs: TrainingQueue[QueuedJob] = TrainingQueue(
            self._run, self._stop_training, release=self._remove_training, slots=training_slots,
            cancel_grace_s=cancel_grace_s, log=log, thread_name="docker-train",
            join_timeout_s=30.0)
        self._containers = InferenceContainers(
            settings, self._docker,
            lambda: [*self._labels("inference"), *self._user_options()], model_cache_size)
        self._available_until = 0.0

    @classmethod
    def from_config(cls, config: GatewayConfig) -> DockerBackend:
        """Build from the gateway configuration."""
        return cls(DockerSettings.from_config(config), training_slots=config.training_slots,
                   cancel_grace_s=config.cancel_grace_s,
                   model_cache_size=config.model_cache_size)

    def describe(self) -> dict[str, object]:
        """Name, images and limits, for the start-up log line."""
        return {"backend": self.name, "training_image": self.settings.training_image,
                "inference_image": self.settings.inference_image,
                "training_slots": self._jobs.slots, "max_containers": self._containers.max_servers}

    # -- docker CLI --------------------------------------------------------------------------

    def _docker(self, *args: str, timeout: float = 60,
                check: bool = True) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run([self.settings.docker, *args], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError:
            raise BackendUnavailable(f"the docker command {self.settings.docker!r} is not "
                                     "installed") from None
        except subprocess.TimeoutExpired:
            raise BackendUnavailable(f"docker {args[0]} did not answer within {timeout:.0f} s") \
                from None
        if check and proc.returncode != 0:
            raise BackendUnavailable(f"docker {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc

    def _user_options(self) -> list[str]:
        """Run containers as the gateway's user, so the files they write are the gateway's."""
        if os.getuid() == 0:
            return []
        return ["--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]

    def _labels(self, kind: str) -> list[str]:
        return ["--label", f"{LABEL}={kind}", "--label",
                f"com.retail-forecast.gateway={self._instance}"]

    def check_available(self) -> None:
        """`docker info` answers (cached for 10 s); BackendUnavailable otherwise."""
        if time.monotonic() < self._available_until:
            return
        proc = self._docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
        if proc.returncode != 0:
            raise BackendUnavailable(f"no Docker engine answers: {proc.stderr.strip()[:300]}")
        self._available_until = time.monotonic() + 10.0

    # -- training ----------------------------------------------------------------------------

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        """Queue the job; a training slot runs it in a container."""
        self.check_available()
        self._jobs.submit(QueuedJob(spec, listener))

    def training_capacity(self) -> int:
        """Free slots of its training queue."""
        return self._jobs.free_slots()

    def cancel_training(self, job_id: str) -> bool:
        """`docker stop -t <grace>` a running job (SIGTERM, then SIGKILL); drop a queued one."""
        return self._jobs.cancel(job_id)

    def _training_container(self, job: QueuedJob) -> str:
        return f"rf-train-{job.spec.job_id}-{self._instance}"[:120]

    def _run(self, job: QueuedJob) -> TrainingOutcome:
        outcome = opt_ml.run(job, lambda tree: self._launch(job, tree), network_interface="eth0",
                             describe_exit=_describe_exit)
        if outcome.model_dir is not None:
            self._package(outcome.model_dir, job.spec.job_dir / "output" / "model.tar.gz")
        return outcome

    def _launch(self, job: QueuedJob, tree: Path) -> subprocess.Popen:
        """`docker run` the training image with the tree mounted at /opt/ml (no network)."""
        container = self._training_container(job)
        command = [self.settings.docker, "run", "--rm", "--name", container,
                   *self._labels("training"), *self._user_options(),
                   "--sig-proxy=false", "--network", "none",
                   "-v", f"{tree.resolve()}:/opt/ml",
                   self.settings.training_image, "train"]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace")
        log.info("training container started", extra={"fields": {
            "job_id": job.spec.job_id, "retailer": job.spec.retailer, "container": container,
            "image": self.settings.training_image}})
        return process

    def _stop_training(self, job: QueuedJob, grace_s: float) -> None:
        """`docker stop -t <grace_s>` in the background (SIGTERM, then SIGKILL)."""
        container = self._training_container(job)

        def stop() -> None:
            # `docker run` may not have created the container yet: retry while it starts.
            deadline = time.monotonic() + 60
            while True:
                done = self._docker("stop", "-t", str(int(grace_s)), container,
                                    timeout=grace_s + 60, check=False)
                alive = job.process is not None and job.process.poll() is None
                if done.returncode == 0 or not alive or time.monotonic() > deadline:
                    return
                time.sleep(0.2)

        threading.Thread(target=stop, name=f"stop-{container[:20]}", daemon=True).start()

    def _remove_training(self, job: QueuedJob) -> None:
        self._docker("rm", "-f", self._training_container(job), check=False)

    @staticmethod
    def _package(model_dir: Path, target: Path) -> None:
        """model.tar.gz with the model's files at its root, as SageMaker packages /opt/ml/model."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for child in sorted(model_dir.iterdir()):
                tar.add(child, arcname=child.name)
        partial.replace(target)

    # -- serving -----------------------------------------------------------------------------

    def load_model(self, model: ModelRef) -> None:
        """Start (or reuse) the version's container and wait for /ping. Called before the
        version goes live."""
        self._containers.release(self._containers.acquire(model))

    def unload_model(self, model: ModelRef) -> None:
        """Retire the version's container: it drains, then stops (see the module docstring)."""
        self._containers.unload(model)

    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        """POST the rows to the version's container, in chunks under the body limit."""
        return self.predict_intervals(model, rows, ())[0]

    def predict_intervals(self, model: ModelRef, rows: RowColumns, levels: Sequence[float],
                          ) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
        """POST the rows with `"levels"` (the container's JSON request); the answers'
        `intervals` are gathered per level. Chunks keep the answer under the body limit too."""
        server = self._containers.acquire(model)
        try:
            dates = np.datetime_as_string(np.asarray(rows.day).astype("datetime64[D]"), unit="D")
            out = np.empty(len(rows), dtype=np.float64)
            bounds = {float(lv): (np.empty(len(rows)), np.empty(len(rows))) for lv in levels}
            for start, stop, body in self._chunks(rows, dates, levels):
                answer = self._invoke(server, body)
                values = np.asarray(answer["predictions"], dtype=np.float64)
                if values.shape != (stop - start,):
                    raise RuntimeError(f"the inference container returned {values.shape[0]} "
                                       f"forecasts for {stop - start} rows")
                out[start:stop] = values
                for interval in answer.get("intervals", []) if levels else []:
                    lower, upper = bounds[float(interval["level"])]
                    lower[start:stop] = interval["lower"]
                    upper[start:stop] = interval["upper"]
            return out, bounds
        finally:
            self._containers.release(server)

    def _chunks(self, rows: RowColumns, dates: np.ndarray, levels: Sequence[float] = ()):
        """(start, stop, body) with every body, and its answer (one forecast and two bounds
        per level per row, about 24 bytes each in JSON), at most `max_body_bytes`."""
        limit = self.settings.max_body_bytes
        n = len(rows)
        step = max(1, min(n, 50_000, limit // (24 * (1 + 2 * len(levels)))))
        start = 0
        while start < n:
            stop = min(n, start + step)
            promo = (None if rows.onpromotion is None
                     else np.asarray(rows.onpromotion[start:stop]).tolist())
            body = request_body(dates[start:stop].tolist(),
                                np.asarray(rows.store_nbr[start:stop]).tolist(),
                                list(rows.family[start:stop]), promo, levels)
            if len(body) > limit and stop - start > 1:
                # Too big: shrink the chunk in proportion (with margin) and try again.
                step = max(1, int((stop - start) * limit / len(body) * 0.9))
                continue
            if len(body) > limit:
                raise ForecastRequestError("rows", f"row {start} alone is over the "
                                                   f"{limit}-byte request limit")
            yield start, stop, body
            start = stop

    def _invoke(self, server: Server, body: bytes) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                          timeout=self.settings.request_timeout_s)
        try:
            conn.request("POST", "/invocations", body=body, headers={
                "Content-Type": "application/json", "Accept": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._containers.forget_if_dead(server)
            raise BackendUnavailable(f"the inference container of {server.model.retailer}/"
                                     f"{server.model.version} did not answer: {exc}") from exc
        finally:
            conn.close()
        if resp.status == 200:
            return json.loads(data)
        refused = decode_error(resp.status, data)
        if refused is not None:
            raise refused
        raise RuntimeError(f"the inference container answered {resp.status}: "
                           f"{error_message(data)}")

    def containers(self) -> dict[str, str]:
        """Running inference containers by `retailer/version` (for tests and logs)."""
        return self._containers.containers()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Fail queued jobs, stop running training containers, remove every container."""
        self._jobs.close(reason)
        names = self._containers.take_all()
        if names:
            self._docker("rm", "-f", *names, timeout=120, check=False)
        # Anything this gateway started and lost track of (one being stopped right now).
        left = self._docker("ps", "-aq", "--filter",
                            f"label=com.retail-forecast.gateway={self._instance}",
                            check=False).stdout.split()
        if left:
            self._docker("rm", "-f", *left, timeout=120, check=False)


def _describe_exit(code: int, tail: str) -> str:
    if code == 125:  # docker run itself failed (no such image, bad mount, ...)
        return f"the training container could not start: {tail}"
    return f"training container exited with code {code}: {tail}"
