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
from store_engine import database_url_for

from bench import fuzz_bench

pytestmark = pytest.mark.slow
REQUESTS = 2_000
GOLDEN = Path(__file__).resolve().parents[2] / "forecasting" / "fixtures" / "artifact_v1"


def test_malformed_requests_never_get_internal_or_unknown(tmp_path, gateway_factory) -> None:
    from forecasting.predictor import Predictor

    data_dir = tmp_path / "data"
    fuzz_bench.import_model(data_dir, GOLDEN, database_url_for(data_dir))
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


def _code(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_the_reported_cases_are_invalid_argument(scripted) -> None:
    """Each case from the issue, by itself: a unary and a streaming call with invalid UTF-8, a
    truncated varint, a page token that overflows SQLite, a retailer with a trailing newline."""
    service = "/forecastapi.v1.ForecastService/"
    metadata = [("authorization", f"Bearer {scripted.api_key('shop')}")]
    bad_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (retailer), a 2-byte string that is not UTF-8
    truncated = b"\x0a\x04shop\x10\xff\xff"  # then field 2 as a varint that never ends
    with grpc.insecure_channel(scripted.target) as channel:
        raw = {"request_serializer": None, "response_deserializer": None}
        cases = {
            "unary, bad UTF-8": lambda: channel.unary_unary(service + "ListModels", **raw)(
                bad_utf8, metadata=metadata, timeout=10),
            "unary, truncated varint": lambda: channel.unary_unary(service + "ListTrainingJobs", **raw)(
                truncated, metadata=metadata, timeout=10),
            "stream, bad UTF-8": lambda: list(channel.stream_stream(service + "PredictStream", **raw)(
                iter([bad_utf8]), metadata=metadata, timeout=10)),
            "server stream, bad UTF-8": lambda: list(channel.unary_stream(
                service + "WatchTrainingJob", **raw)(bad_utf8, metadata=metadata, timeout=10)),
            "upload, bad UTF-8": lambda: channel.stream_unary(service + "UploadDataset", **raw)(
                iter([b"\x0a\x04\x0a\x02\xff\xfe"]), metadata=metadata, timeout=10),
        }
        for name, call in cases.items():
            err = _code(call)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err)
            assert "the bytes are not a valid forecastapi.v1." in err.details(), (name, err.details())
        stub_kwargs = {"metadata": metadata, "timeout": 10}
        from forecast_client import pb, pb_grpc

        stub = pb_grpc.ForecastServiceStub(channel)
        err = _code(lambda: stub.ListTrainingJobs(
            pb.ListTrainingJobsRequest(retailer="shop", page_token="9" * 20), **stub_kwargs))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.details()
        err = _code(lambda: stub.ListModels(pb.ListModelsRequest(retailer="shop\n"), **stub_kwargs))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid retailer id" in err.details()
