"""moto in server mode: a real HTTP server on 127.0.0.1 in its own process, standing in for S3
and the SageMaker control plane (docs/sagemaker.md, "What is tested where").

Imported by tests/conftest.py (the `moto_server` fixture) and the SageMaker benchmark; tests
never use moto's in-process mock decorators.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from sagemaker_job import free_port

#: Credentials and region every client talking to moto uses (never real ones: local mode also
#: passes them into the containers it starts).
DUMMY_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_REGION": "us-east-1"}


class MotoServer:
    """`moto_server` on 127.0.0.1:<free port>, started against a deadline, stopped with SIGTERM."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._proc: subprocess.Popen | None = None

    def start(self, deadline_s: float = 30) -> MotoServer:
        exe = Path(sys.executable).parent / "moto_server"
        log = open(self._log_path, "wb")  # noqa: SIM115 - the child owns it
        self._proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                      stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, **DUMMY_AWS_ENV})
        log.close()
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}: "
                                   f"{self._log_path.read_text()[-1000:]}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/data.json", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer within {deadline_s:.0f} s")

    def _post(self, path: str, payload: dict | None = None) -> None:
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def reset(self) -> None:
        """Forget every bucket, job and endpoint."""
        self._post("/moto-api/reset")

    def set_endpoint_results(self, bodies: list[str], content_type: str = "text/csv") -> None:
        """The bodies InvokeEndpoint answers, in order (moto keys its queue by request body)."""
        self._post("/moto-api/static/sagemaker/endpoint-results", {
            "account_id": "123456789012", "region": "us-east-1",
            "results": [{"Body": b, "ContentType": content_type,
                         "InvokedProductionVariant": "AllTraffic",
                         "CustomAttributes": ""} for b in bodies]})

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
