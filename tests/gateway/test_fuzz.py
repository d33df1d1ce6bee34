"""Seeded fuzzing of every RPC over a real channel: 2,000 malformed requests (raw wire bytes
through a generic channel method, hostile but well-formed messages, and the reported cases) get
0 INTERNAL and 0 UNKNOWN, and the gateway serves normally afterwards. `make bench` runs 10,000
(bench/fuzz_bench.py)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from forecast_client import ForecastClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import fuzz_bench

pytestmark = pytest.mark.slow
REQUESTS = 2_000
GOLDEN = Path(__file__).resolve().parents[1] / "forecasting" / "fixtures" / "artifact_v1"


def _with_model(data_dir: Path) -> None:
    """`acme` with a live model (the golden artifact) and no dataset, so no fuzzed Train can
    start a real training job."""
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant

    service = ForecastService(GatewayConfig(data_dir=data_dir), LocalBackend(training_slots=1))
    try:
        service.models.import_model(Tenant(fuzz_bench.RETAILER), GOLDEN)
    finally:
        service.close()


def test_malformed_requests_never_get_internal_or_unknown(tmp_path, gateway_factory) -> None:
    from forecasting.predictor import Predictor

    data_dir = tmp_path / "data"
    _with_model(data_dir)
    gw = gateway_factory(data_dir).start()
    key = gw.api_key(fuzz_bench.RETAILER)
    admin = [("authorization", f"Bearer {gw.admin_key()}")]
    report = fuzz_bench.run(gw.target, REQUESTS, seed=12,
                            metadata=[("authorization", f"Bearer {key}")],
                            metadata_for={"forecastapi.v1.AdminService": admin})
    assert report.requests == REQUESTS
    assert report.forbidden == [], report.as_dict()
    assert report.codes["INVALID_ARGUMENT"] > REQUESTS // 4, report.as_dict()  # reached the checks

    with grpc.insecure_channel(gw.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    rows = Predictor.load(GOLDEN).future_rows(2)
    with ForecastClient(target=gw.target, api_key=key) as client:
        assert [m.version for m in client.list_models(fuzz_bench.RETAILER) if m.live] == ["v1"]
        values = client.predict(fuzz_bench.RETAILER, date=rows["date"].tolist(),
                                store_nbr=rows["store_nbr"].tolist(),
                                family=rows["family"].tolist())
    assert values.shape == (len(rows),)
    assert gw.proc.poll() is None
