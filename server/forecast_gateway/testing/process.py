"""A `forecast-gateway` child process on 127.0.0.1, port 0: the one launcher the tests, the
benchmarks and `make demo` share.

The gateway writes its bound port to `--port-file` once it serves; `start` polls that file
against a deadline and fails at once when the process exits first. `stop` is the graceful path
(SIGTERM: drain, then exit), with SIGKILL when the drain overruns. `api_key(retailer)` and
`admin_key()` issue keys with the offline `forecast-gateway keys` command, as an operator
would. The child finds the same gateway code as this process (`backends.pythonpath`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from forecast_gateway.backends.pythonpath import child_pythonpath

LOG_TAIL_CHARS = 4000
POLL_S = 0.05
class GatewayProcess:
    """One `python -m forecast_gateway.main` child serving `data_dir` on 127.0.0.1.

    `env` overrides the inherited environment (e.g. FORECAST_GATEWAY_* settings), `args` are
    added to the command line (e.g. `--backend docker`). `module` is the server run with
    `python -m`: the gateway, or a stand-in with the same start-up flags (the benchmark's sync
    server). With `http=True` the gateway also serves its HTTP/JSON face on a free port
    (`http_port`, `http_url`); with `metrics=True` its Prometheus endpoint too (`metrics_url`).
    The port file and, by default, the log
    (stdout and stderr, appended so a restart keeps the earlier run) sit beside `data_dir`.
    Usable as a context manager: entering starts it if needed, leaving stops it.
    """

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None, *,
                 args: Sequence[str] = (), log_path: Path | None = None,
                 module: str = "forecast_gateway.main", http: bool = False,
                 metrics: bool = False):
        self.data_dir = Path(data_dir)
        self.module = module
        self.env = dict(env or {})
        self.args = list(args)
        self.log_path = (Path(log_path) if log_path is not None
                         else self.data_dir.parent / f"{self.data_dir.name}.gateway.log")
        self.port_file = self.data_dir.parent / f"{self.data_dir.name}.port"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.http_port_file = (self.data_dir.parent / f"{self.data_dir.name}.http-port"
                               if http else None)
        self.http_port = 0
        self.metrics_port_file = (self.data_dir.parent / f"{self.data_dir.name}.metrics-port"
                                  if metrics else None)
        self.metrics_port = 0
        self._keys: dict[str, str] = {}

    @property
    def target(self) -> str:
        """The address clients dial, "127.0.0.1:PORT" (valid once started)."""
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The HTTP/JSON face's base URL, "http://127.0.0.1:PORT" (with `http=True`, once
        started)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint, "http://127.0.0.1:PORT/metrics" (with `metrics=True`)."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def keys_command(self, *args: str) -> str:
        """Run `forecast-gateway keys --data-dir DATA_DIR ARGS...` (the offline admin command)
        and return its stdout; RuntimeError with its stderr when it fails."""
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH"))
        proc = subprocess.run([sys.executable, "-m", "forecast_gateway.main", "keys",
                               "--data-dir", str(self.data_dir), *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"forecast-gateway keys {' '.join(args)} exited "
                               f"{proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def api_key(self, retailer: str) -> str:
        """An API key for `retailer` (the retailer is created when new), issued once per
        GatewayProcess with the offline `keys` command and then reused."""
        if retailer not in self._keys:
            self._keys[retailer] = self.keys_command(
                "create-retailer", retailer, "--exist-ok", "--print", "--name", "launcher").strip()
        return self._keys[retailer]

    def admin_key(self) -> str:
        """An admin API key (AdminService), issued once per GatewayProcess."""
        if "" not in self._keys:
            self._keys[""] = self.keys_command("issue", "--admin", "--print",
                                               "--name", "launcher").strip()
        return self._keys[""]

    def command(self) -> list[str]:
        """The child's command line."""
        return [sys.executable, "-m", self.module, "--host", "127.0.0.1",
                "--port", "0", "--data-dir", str(self.data_dir),
                "--port-file", str(self.port_file),
                *(["--http-port", "0", "--http-port-file", str(self.http_port_file)]
                  if self.http_port_file is not None else []),
                *(["--metrics-port", "0", "--metrics-port-file", str(self.metrics_port_file)]
                  if self.metrics_port_file is not None else []), *self.args]

    def start(self, timeout_s: float = 60.0) -> Self:
        """Start the child and wait until it serves; returns self.

        Raises RuntimeError naming the exit code when the child exits first, or the timeout
        when it does not serve within `timeout_s` (the child is killed); both carry the log tail.
        """
        for folder in {self.port_file.parent, self.log_path.parent}:
            folder.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        for extra in (self.http_port_file, self.metrics_port_file):
            if extra is not None:
                extra.unlink(missing_ok=True)
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH"))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text:
                self.port = int(text)
                if self.http_port_file is not None:  # written before the port file
                    self.http_port = int(self.http_port_file.read_text().strip())
                if self.metrics_port_file is not None:  # likewise
                    self.metrics_port = int(self.metrics_port_file.read_text().strip())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with code {self.proc.returncode} before "
                                   f"serving; log {self.log_path}:\n{self.log()}")
            time.sleep(POLL_S)
        self.kill()
        raise RuntimeError(f"the gateway did not serve within {timeout_s:g} s (killed); "
                           f"log {self.log_path}:\n{self.log()}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait for the drain; SIGKILL when it overruns `timeout_s`.

        Returns the exit code (0 after a clean stop, negative for a signal), or None when the
        gateway was never started.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, no drain (a crash, as the restart tests need), and reap the child."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The last `chars` characters of the child's log, for error messages."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def __enter__(self) -> Self:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
