"""The docker backend's inference containers: one per loaded model version, started on demand
and ready once `GET /ping` answers, counted per request, retired (still answering the requests
already routed to it, then stopped `drain_s` after its last one) when its version is unloaded
or the cache is over its limit, and forgotten when it dies. The backend sends the requests."""

from __future__ import annotations

import http.client
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from forecast_gateway.domain import ModelRef
from forecast_gateway.errors import BackendUnavailable
from forecasting.errors import ArtifactError

if TYPE_CHECKING:
    from forecast_gateway.backends.docker_backend import DockerSettings

log = logging.getLogger("forecast_gateway.backends.docker")


@dataclass
class Server:
    """One inference container serving one model version."""

    model: ModelRef
    container: str
    port: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    inflight: int = 0
    retired: bool = False
    stopping: bool = False
    last_used: float = field(default_factory=time.monotonic)


class InferenceContainers:
    """The live and draining containers of one docker backend (module docstring)."""

    def __init__(self, settings: DockerSettings,
                 run: Callable[..., subprocess.CompletedProcess],
                 run_options: Callable[[], list[str]], max_servers: int):
        """`run(*args, timeout=, check=)` runs the docker command; `run_options()` are the
        `docker run` options of every container (labels, user)."""
        self._settings = settings
        self._run = run
        self._run_options = run_options
        self.max_servers = max_servers
        self._lock = threading.Lock()  # guards the tables and each Server's counters
        self._servers: dict[Path, Server] = {}
        self._draining: dict[Path, Server] = {}  # retired, still answering until stopped

    def acquire(self, model: ModelRef) -> Server:
        """The version's ready container with one more request counted on it.

        A retired container that has not begun to stop still answers: a request that resolved
        the old live version just before a switch must not start that version again.
        """
        with self._lock:
            server = self._servers.get(model.path) or self._draining.get(model.path)
            starting = server is None
            if server is None:
                server = Server(model, f"rf-serve-{model.retailer}-{model.version}-"
                                        f"{uuid.uuid4().hex[:6]}"[:120])
                self._servers[model.path] = server
            server.inflight += 1
            server.last_used = time.monotonic()
        if starting:
            try:
                self._start(server)
            except BaseException as exc:
                server.error = exc
                with self._lock:
                    if self._servers.get(model.path) is server:
                        del self._servers[model.path]
                server.ready.set()
                self._run("rm", "-f", server.container, check=False)
                self.release(server)
                raise
            finally:
                server.ready.set()
            self._evict_over_limit()
        else:
            server.ready.wait(self._settings.ping_timeout_s + 60)
            if server.error is not None:
                self.release(server)
                raise server.error
        return server

    def release(self, server: Server) -> None:
        with self._lock:
            server.inflight -= 1
            server.last_used = time.monotonic()
            stop_now = server.retired and server.inflight == 0
        if stop_now:
            self._schedule_stop(server)

    def _start(self, server: Server) -> None:
        model_dir = server.model.path.resolve()
        if not (model_dir / "artifact.json").is_file():
            raise ArtifactError(f"{model_dir} holds no model artifact (artifact.json)")
        self._run(
            "run", "-d", "--name", server.container, *self._run_options(),
            "-v", f"{model_dir}:/opt/ml/model:ro", "-p", "127.0.0.1::8080",
            "-e", f"SAGEMAKER_MODEL_SERVER_WORKERS={self._settings.serve_workers}",
            self._settings.inference_image, "serve", timeout=120)
        out = self._run("port", server.container, "8080/tcp").stdout.split()
        if not out:
            raise BackendUnavailable(f"container {server.container} publishes no port")
        server.port = int(out[0].rsplit(":", 1)[1])
        started = time.monotonic()
        self._wait_for_ping(server)
        log.info("inference container ready", extra={"fields": {
            "retailer": server.model.retailer, "model_version": server.model.version,
            "container": server.container, "port": server.port,
            "seconds": round(time.monotonic() - started, 2)}})

    def _wait_for_ping(self, server: Server) -> None:
        deadline = time.monotonic() + self._settings.ping_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            state = self._run("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}",
                                 server.container, check=False).stdout.split()
            if state and state[0] != "true":
                tail = self._run("logs", "--tail", "20", server.container, check=False)
                text = (tail.stdout + tail.stderr).strip()[-800:]
                if "cannot load the model" in text:
                    raise ArtifactError(f"the inference container cannot load "
                                        f"{server.model.version}: {text}")
                raise BackendUnavailable(f"the inference container exited with code "
                                         f"{state[-1]} before /ping answered: {text}")
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            try:
                conn.request("GET", "/ping")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}"
            finally:
                conn.close()
            time.sleep(0.25)
        raise BackendUnavailable(f"the inference container of {server.model.version} did not "
                                 f"answer /ping within {self._settings.ping_timeout_s:.0f} s "
                                 f"({last})")

    def _retire(self, server: Server) -> None:
        """No new requests go to it; stop it once the in-flight ones are done."""
        with self._lock:
            if self._servers.get(server.model.path) is server:
                del self._servers[server.model.path]
                self._draining[server.model.path] = server
            server.retired = True
            idle = server.inflight == 0
        if idle:
            self._schedule_stop(server)

    def _schedule_stop(self, server: Server) -> None:
        def stop() -> None:
            with self._lock:
                if server.inflight or server.stopping:
                    return  # the last request's release schedules it again
                server.stopping = True
                if self._draining.get(server.model.path) is server:
                    del self._draining[server.model.path]
            log.info("inference container retired", extra={"fields": {
                "retailer": server.model.retailer, "model_version": server.model.version,
                "container": server.container}})
            self._run("stop", "-t", "30", server.container, timeout=90, check=False)
            self._run("rm", "-f", server.container, check=False)

        timer = threading.Timer(self._settings.drain_s, stop)
        timer.daemon = True
        timer.start()

    def _evict_over_limit(self) -> None:
        with self._lock:
            idle = sorted((s for s in self._servers.values() if s.inflight == 0),
                          key=lambda s: s.last_used)
            excess = len(self._servers) - self.max_servers
        for server in idle[:max(0, excess)]:
            self._retire(server)

    def forget_if_dead(self, server: Server) -> None:
        proc = self._run("inspect", "-f", "{{.State.Running}}", server.container, check=False)
        if proc.stdout.strip() != "true":
            with self._lock:
                for table in (self._servers, self._draining):
                    if table.get(server.model.path) is server:
                        del table[server.model.path]
            self._run("rm", "-f", server.container, check=False)

    def containers(self) -> dict[str, str]:
        """Running inference containers by `retailer/version` (for tests and logs)."""
        with self._lock:
            return {f"{s.model.retailer}/{s.model.version}": s.container
                    for s in self._servers.values()}

    def unload(self, model: ModelRef) -> None:
        """Retire the version's container, if it has one."""
        with self._lock:
            server = self._servers.get(model.path)
        if server is not None:
            self._retire(server)

    def take_all(self) -> list[str]:
        """Forget every container (live and draining); their names, for the caller to remove."""
        with self._lock:
            servers = [*self._servers.values(), *self._draining.values()]
            self._servers, self._draining = {}, {}
        return [s.container for s in servers]
