"""In-process gateway with a scripted backend, for what a real model cannot show on demand:
a backend that is down, a bug, a slow prediction, a cancelled stream."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from forecast_gateway.backends.base import Backend, TrainingListener, TrainingSpec
from forecast_gateway.config import GatewayConfig
from forecast_gateway.dataplane import Tenant
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import BackendUnavailable
from forecast_gateway.server import GatewayServer
from store_engine import database_url_for


class ScriptedBackend(Backend):
    """Forecast = store_nbr * 1000 + day offset; behaviour switches set by the test."""

    name = "scripted"

    def __init__(self) -> None:
        self.down = False
        self.fail_with: Exception | None = None
        self.delay_s = 0.0
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.model_events: list[tuple[str, str]] = []  # ("load" | "unload", version)
        self._lock = threading.Lock()

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        self.check_available()

    def cancel_training(self, job_id: str) -> bool:
        return False

    def check_available(self) -> None:
        if self.down:
            raise BackendUnavailable("scripted backend is down")

    def load_model(self, model: ModelRef) -> None:
        self.model_events.append(("load", model.version))

    def unload_model(self, model: ModelRef) -> None:
        self.model_events.append(("unload", model.version))

    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.check_available()
            if self.fail_with is not None:
                raise self.fail_with
            if self.delay_s:
                time.sleep(self.delay_s)
            return rows.store_nbr.astype(np.float64) * 1000 + (rows.day - rows.day.min())
        finally:
            with self._lock:
                self.active -= 1

    def close(self, reason: str) -> None:
        pass


class InProcessGateway:
    """A GatewayServer on its own event loop thread."""

    def __init__(self, data_dir: Path, backend: Backend, **config):
        self.backend = backend
        settings = {"predict_threads": 2, "max_predict_rows": 1000,
                    "database_url": database_url_for(data_dir), **config}
        self.server = GatewayServer(GatewayConfig(port=0, data_dir=data_dir, **settings),
                                    backend=backend)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> InProcessGateway:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api_key(self, retailer: str) -> str:
        """A new API key for `retailer` (created when new), through the gateway's own admin
        operations (the same code as AdminService and `forecast-gateway keys`)."""
        from forecast_gateway.auth.principal import Role

        admin = self.server.admin
        if admin.registry.retailer_exists(retailer):
            return admin.issue_key(Role.RETAILER, retailer, "test").key
        return admin.create_retailer(retailer, "test").key

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(1.0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def fake_artifact(root: Path) -> Path:
    """A directory with the JSON files the gateway reads itself (the scripted backend answers
    for any series; the history's end and the horizon say which days are past it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "history.json").write_text(json.dumps(
        {"last_date": "2017-08-15", "lookback": 28, "series": []}))
    (root / "zero_series.json").write_text("[]")
    (root / "artifact.json").write_text(json.dumps({
        "final_model": "xgboost", "hyperparameters": {"model_kind": "xgboost", "horizon": "16"},
        "data": {"start": "2017-01-01", "end": "2017-08-15", "rows": 10, "series": 1}}))
    (root / "evaluation.json").write_text(json.dumps({
        "horizon": 16, "origin": "2017-07-30", "test_start": "2017-07-31", "test_end": "2017-08-15",
        "final_model": "xgboost",
        "models": {"xgboost": {"overall": {"rmse": 1.0, "rmsle": 0.5, "mae": 0.8, "wape": 0.2,
                                           "bias": 0.01}, "per_family": {}}},
        "baseline": {"name": "seasonal_naive_7", "overall": {"rmse": 2.0, "rmsle": 0.9, "mae": 1.5,
                                                             "wape": 0.4, "bias": None}}}))
    return root


@pytest.fixture()
def restartable_gateway() -> Iterator:
    """`restartable_gateway(data_dir, **config)`: a started in-process gateway on `data_dir` over a
    fresh ScriptedBackend, for tests that stop it and start another on the same data dir (crash
    recovery); those still running are stopped at teardown."""
    started: list[InProcessGateway] = []

    def start(data_dir: Path, **config) -> InProcessGateway:
        gw = InProcessGateway(data_dir, ScriptedBackend(), **config)
        started.append(gw.start())
        return gw

    try:
        yield start
    finally:
        for gw in started:
            if gw.thread.is_alive():
                gw.stop()


@pytest.fixture()
def gateway_over(tmp_path: Path) -> Iterator:
    """`gateway_over(backend, **config)`: a started in-process gateway over `backend` (a real
    backend on stubbed clients, say) on a data dir of its own; stopped at teardown."""
    started: list[InProcessGateway] = []

    def start(backend: Backend, **config) -> InProcessGateway:
        gw = InProcessGateway(tmp_path / f"over-{len(started)}", backend, **config)
        started.append(gw.start())
        return gw

    try:
        yield start
    finally:
        for gw in started:
            gw.stop()


@pytest.fixture()
def scripted_gateway(tmp_path: Path, restartable_gateway):
    """`scripted_gateway(**config)`: a started in-process gateway over a fresh ScriptedBackend on
    a data dir of its own, with GatewayConfig fields overridden; all are stopped at teardown."""
    data_dirs = (tmp_path / f"data-{i}" for i in itertools.count())
    return lambda **config: restartable_gateway(next(data_dirs), **config)


@pytest.fixture()
def make_artifact(tmp_path: Path):
    """`make_artifact(name)`: a fake artifact directory under the test's tmp_path."""
    return lambda name: fake_artifact(tmp_path / "artifacts" / name)


@pytest.fixture()
def scripted(scripted_gateway, make_artifact) -> InProcessGateway:
    """An in-process gateway whose retailer `shop` has a live (scripted) model v1."""
    gw = scripted_gateway()
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("v1"))
    return gw


@pytest.fixture()
def local_gateway(tmp_path: Path) -> Iterator[InProcessGateway]:
    """An in-process gateway over the real local backend (the Predictor in process), for
    models registered directly with `server.service.models.import_model`; its HTTP face is on
    `server.http_port`."""
    from forecast_gateway.backends.local import LocalBackend

    gw = InProcessGateway(tmp_path / "local-data", LocalBackend(), http_port=0).start()
    try:
        yield gw
    finally:
        gw.stop()
