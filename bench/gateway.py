"""A `forecast-gateway` child process on 127.0.0.1 (port 0), for the benchmarks and `make demo`.

The tests have their own fixture with the same steps (`tests/conftest.py`, `GatewayProcess`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_gateway(data_dir: Path, log_file: Path, *args: str, env: dict[str, str] | None = None,
                  timeout_s: float = 60) -> tuple[subprocess.Popen, str]:
    """Start the gateway on `data_dir` (stderr to `log_file`, `args` added to its command line)
    and wait for its port file; returns the process and its target ("127.0.0.1:PORT").

    Raises RuntimeError when the gateway exits or does not start within `timeout_s`.
    """
    port_file = data_dir.parent / f"{data_dir.name}.port"
    port_file.unlink(missing_ok=True)
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "server"), str(ROOT / "client"), os.environ.get("PYTHONPATH", "")])}
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forecast_gateway.main", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(data_dir), "--port-file", str(port_file), *args],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, f"127.0.0.1:{int(port_file.read_text())}"
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited ({proc.returncode}); see {log_file}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the gateway did not start in {timeout_s:.0f} s; see {log_file}")


def stop_gateway(proc: subprocess.Popen, timeout_s: float = 30) -> int:
    """SIGTERM (drain, then exit) and wait; SIGKILL when it does not exit in time. The exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
