"""Shared fixtures: a real gateway process on 127.0.0.1 (port 0) and a retailer with a model.

`GatewayProcess` starts `python -m forecast_gateway.main` with its own data dir and reads the
bound port from --port-file; it always stops the process (SIGTERM, then SIGKILL) on teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "train.csv"
FAST_HP = {"num_round": "30", "early_stopping_rounds": "5"}


class GatewayProcess:
    """A `forecast-gateway` child process serving on 127.0.0.1."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = data_dir.parent / f"{data_dir.name}.gateway.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> GatewayProcess:
        port_file = self.data_dir.parent / f"{self.data_dir.name}.port"
        port_file.unlink(missing_ok=True)
        env = {**os.environ, "FORECAST_GATEWAY_LOG_LEVEL": "INFO", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forecast_gateway.main", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(self.data_dir), "--port-file", str(port_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"gateway did not start within {timeout_s} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (graceful stop); SIGKILL when it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The bundled sample history (data/sample/train.csv)."""
    return SAMPLE


@pytest.fixture(scope="session")
def fast_hp() -> dict[str, str]:
    """Hyperparameters that train the sample in seconds."""
    return dict(FAST_HP)


@pytest.fixture()
def gateway_factory() -> Iterator[type[GatewayProcess]]:
    """`gateway_factory(data_dir, env=None)` -> an unstarted GatewayProcess; all are stopped at
    teardown (for tests that restart or kill gateways)."""
    made: list[GatewayProcess] = []

    def make(data_dir: Path, env: dict[str, str] | None = None) -> GatewayProcess:
        gw = GatewayProcess(data_dir, env)
        made.append(gw)
        return gw

    yield make  # type: ignore[misc]
    for gw in made:
        gw.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway for the session, with small limits so the limit tests stay cheap."""
    data_dir = tmp_path_factory.mktemp("gateway") / "data"
    gw = GatewayProcess(data_dir, env={
        "FORECAST_GATEWAY_MAX_PREDICT_ROWS": "5000",
        "FORECAST_GATEWAY_MAX_STREAM_CHUNK_ROWS": "5000",
        "FORECAST_GATEWAY_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    }).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def future_rows() -> pd.DataFrame:
    """The 16 days after the sample's history, for every sample series (with an id column)."""
    history = pd.read_csv(SAMPLE, usecols=["date", "store_nbr", "family"])
    series = history[["store_nbr", "family"]].drop_duplicates().sort_values(["store_nbr", "family"])
    last = pd.Timestamp(history["date"].max())
    days = pd.date_range(last + pd.Timedelta(days=1), periods=16, freq="D")
    grid = series.merge(pd.DataFrame({"date": days.strftime("%Y-%m-%d")}), how="cross")
    grid = grid[["date", "store_nbr", "family"]].sort_values(["date", "store_nbr", "family"])
    grid.insert(0, "id", range(len(grid)))
    grid["onpromotion"] = 0
    return grid.reset_index(drop=True)


@pytest.fixture(scope="session")
def trained(gateway: GatewayProcess) -> dict:
    """Retailer `acme` with an uploaded sample and one trained (live) model; also the events seen."""
    from forecast_client import ForecastClient

    with ForecastClient(target=gateway.target) as client:
        client.wait_until_ready(10)
        dataset = client.upload_dataset("acme", SAMPLE)
        job = client.train("acme", dataset_id=dataset.dataset_id, hyperparameters=FAST_HP)
        events = list(client.watch_job("acme", job.job_id))
    return {"retailer": "acme", "dataset": dataset, "job": job, "events": events,
            "final": events[-1]}
