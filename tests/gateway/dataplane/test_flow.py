"""The whole flow over a real channel: upload -> train -> watch -> predict -> stream -> metrics ->
models, against a gateway process with the embedded local backend."""

from __future__ import annotations

import grpc
import numpy as np
import pandas as pd
import pytest
from forecast_client import ForecastClient, pb
from forecast_client.rows import make_batch
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.slow


def test_upload_describes_the_dataset(trained: dict) -> None:
    ds = trained["dataset"]
    assert ds.dataset_id.startswith("ds-") and ds.retailer == "acme"
    assert ds.rows == 19320 and ds.series == 24
    assert (ds.start_date, ds.end_date) == ("2015-06-01", "2017-08-15")
    assert ds.format == pb.DATASET_FORMAT_CSV and len(ds.sha256) == 64


def test_watch_streams_progress_until_the_terminal_state(trained: dict) -> None:
    events = trained["events"]
    states = [e.state for e in events]
    assert states[-1] == pb.JOB_STATE_SUCCEEDED
    assert pb.JOB_STATE_RUNNING in states
    progress = [e.progress for e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert {"fit", "evaluate"} <= {e.stage for e in events}
    final = trained["final"]
    assert final.model_version == "v1" and final.failure_reason == ""
    assert final.start_time.seconds and final.end_time.seconds
    assert "xgboost.test.rmsle" in final.metrics and "baseline.test.rmsle" in final.metrics


def test_predict_unary_and_stream_agree(gateway, trained, future_rows: pd.DataFrame) -> None:
    with ForecastClient(target=gateway.target) as client:
        rows = future_rows.head(48)
        unary = client.predict("acme", date=rows["date"], store_nbr=rows["store_nbr"],
                               family=rows["family"], onpromotion=rows["onpromotion"])
        assert unary.shape == (48,) and np.isfinite(unary).all() and (unary >= 0).all()
        # Bulk: small chunks so the stream carries many of them, order kept.
        out = client.predict_frame("acme", future_rows, chunk_rows=50, max_in_flight=3)
        assert list(out["id"]) == list(future_rows["id"])
        np.testing.assert_allclose(out["sales"].to_numpy()[:48], unary, rtol=1e-9)
        # A permuted frame gets the same forecasts per row: order is per row, not per series.
        shuffled = future_rows.sample(frac=1.0, random_state=1)
        again = client.predict_frame("acme", shuffled, chunk_rows=37)
        merged = again.set_index("id")["sales"].reindex(out["id"]).to_numpy()
        np.testing.assert_allclose(merged, out["sales"].to_numpy(), rtol=1e-9)
        # A named version answers like the live one.
        named = client.predict("acme", date=rows["date"], store_nbr=rows["store_nbr"],
                               family=rows["family"], onpromotion=rows["onpromotion"],
                               model_version="v1")
        np.testing.assert_allclose(named, unary)


def test_stream_chunks_carry_their_ids(gateway, trained, future_rows: pd.DataFrame) -> None:
    with ForecastClient(target=gateway.target) as client:
        rows = future_rows.head(30)
        batches = [make_batch(rows["date"][i:i + 10], rows["store_nbr"][i:i + 10],
                              rows["family"][i:i + 10]) for i in range(0, 30, 10)]
        results = list(client.predict_batches("acme", batches))
        assert [r[0] for r in results] == [0, 1, 2]
        assert all(len(r[1]) == 10 and r[2] == "v1" for r in results)


def test_metrics_compare_the_model_with_the_baseline(gateway, trained) -> None:
    with ForecastClient(target=gateway.target) as client:
        m = client.get_metrics("acme")
    assert m.model.version == "v1" and m.model.live
    assert m.model.job_id == trained["job"].job_id
    assert m.model.dataset_id == trained["dataset"].dataset_id
    assert m.model.data_end_date == "2017-08-15"
    assert m.horizon == 16 and m.test_start_date <= m.test_end_date <= "2017-08-15"
    names = {e.name: e for e in m.evaluations}
    assert "xgboost" in names and names["xgboost"].final
    baseline = [e for e in m.evaluations if e.baseline]
    assert len(baseline) == 1 and baseline[0].overall.rmsle > 0
    assert names["xgboost"].per_family  # per family scores present
    assert names["xgboost"].overall.rmsle == pytest.approx(trained["final"].metrics["xgboost.test.rmsle"], rel=1e-3)


def test_models_and_jobs_are_listed(gateway, trained) -> None:
    with ForecastClient(target=gateway.target) as client:
        models = client.list_models("acme")
        assert [(m.version, m.live) for m in models][:1] == [(models[0].version, True)]
        assert any(m.version == "v1" for m in models)
        jobs = client.list_jobs("acme")
        assert trained["job"].job_id in {j.job_id for j in jobs}
        assert client.get_job("acme", trained["job"].job_id).state == pb.JOB_STATE_SUCCEEDED
        assert client.list_jobs("acme", state=pb.JOB_STATE_FAILED) == [] or all(
            j.state == pb.JOB_STATE_FAILED for j in client.list_jobs("acme", state=pb.JOB_STATE_FAILED))


def test_health_and_reflection(gateway) -> None:
    with grpc.insecure_channel(gateway.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "forecastapi.v1.ForecastService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = list(refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
        names = {s.name for s in responses[0].list_services_response.service}
        assert "forecastapi.v1.ForecastService" in names and "grpc.health.v1.Health" in names
