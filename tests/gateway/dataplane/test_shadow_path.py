"""The version in shadow stays off the prediction path, through a real gRPC channel: while its
backend calls hang, live Predicts are answered at once and the shadow's full queue drops (and
counts) batches instead of blocking; when its calls fail, live Predicts still succeed. The
shadow's forecasts go through the backend's own `predict`, with the shadow's version."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from forecast_client import ForecastClient
from forecast_gateway.backends.base import Backend, TrainingListener, TrainingSpec
from forecast_gateway.dataplane import Tenant
from forecast_gateway.dataplane.shadow import QUEUE_BATCHES
from forecast_gateway.domain import ModelRef, RowColumns

from forecasting import artifact

GOLDEN = Path(__file__).resolve().parents[2] / "forecasting" / "fixtures" / "artifact_v2"


class ShadowGatedBackend(Backend):
    """Forecasts store_nbr * 1000 + day; those with version v2 (the shadow) wait for `gate` or
    raise `shadow_error`; `shadow_calls` counts them, `model_events` the loads and unloads."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.shadow_error: Exception | None = None
        self.shadow_calls = 0
        self.model_events: list[tuple[str, str]] = []

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        raise AssertionError("no training here")

    def cancel_training(self, job_id: str) -> bool:
        return False

    def check_available(self) -> None:
        pass

    def load_model(self, model: ModelRef) -> None:
        self.model_events.append(("load", model.version))

    def unload_model(self, model: ModelRef) -> None:
        self.model_events.append(("unload", model.version))

    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        if model.version == "v2":
            self.shadow_calls += 1
            if self.shadow_error is not None:
                raise self.shadow_error
            self.gate.wait(30)
        return rows.store_nbr.astype(np.float64) * 1000 + rows.day

    def close(self, reason: str) -> None:
        pass


@pytest.fixture()
def shadowed(gateway_over):
    """Retailer `shop`: the golden artifact live as v1 and again in shadow as v2."""
    backend = ShadowGatedBackend()
    gw = gateway_over(backend)
    service = gw.server.service
    service.models.import_model(Tenant("shop"), GOLDEN)
    service.models.import_model(Tenant("shop"), GOLDEN, make_live=False)
    with service.registry.db.write() as conn:       # as a promote=shadow job leaves it
        service.registry._set_shadow(conn, "shop", "v2")
    service.shadows.follow()
    assert service.shadows.predictor.pointers["shop"].version == "v2"
    table = artifact.load_history(GOLDEN / "history.parquet")
    first = np.datetime64(table.last_date, "D") + 1
    rows = [(str(first + d), int(s), str(f)) for s, f in zip(table.store_nbr, table.family)
            for d in range(3)]
    return gw, backend, service, rows


def test_a_hanging_shadow_never_delays_a_live_answer(shadowed) -> None:
    gw, backend, service, rows = shadowed
    with ForecastClient(target=gw.target, api_key=gw.api_key("shop")) as client:
        slowest = 0.0
        for i in range(QUEUE_BATCHES + 10):
            date, store, family = rows[i % len(rows)]
            t0 = time.perf_counter()
            got = client.predict("shop", date=[date], store_nbr=[store], family=[family])
            slowest = max(slowest, time.perf_counter() - t0)
            assert len(got) == 1
        assert slowest < 2.0, slowest                   # the shadow hangs for up to 30 s
        dropped = service.state.metrics.shadow_dropped._value.get()
        assert dropped >= 9                              # one in the worker, 64 queued
        assert backend.shadow_calls == 1
        backend.gate.set()
        service.shadows.predictor.flush()
        assert backend.shadow_calls >= 2                # later batches with new cells, too
        assert ("load", "v2") in backend.model_events   # loaded before it was shadowed


def test_a_failing_shadow_never_fails_a_live_answer(shadowed) -> None:
    gw, backend, service, rows = shadowed
    backend.shadow_error = RuntimeError("the challenger's endpoint is down")
    backend.gate.set()
    dates, stores, families = zip(*rows)
    with ForecastClient(target=gw.target, api_key=gw.api_key("shop")) as client:
        for _ in range(3):
            got = client.predict("shop", date=list(dates), store_nbr=list(stores),
                                 family=list(families))
            assert len(got) == len(rows)
    service.shadows.predictor.flush()
    assert backend.shadow_calls >= 1
