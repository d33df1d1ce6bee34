"""What only a scripted backend can show on demand: a backend that is down (UNAVAILABLE), a bug
(INTERNAL with a generic message), a slow prediction (DEADLINE_EXCEEDED), a cancelled stream
(work stops), flow control (at most the stream window's chunks at once, each answered as soon
as it is done), the live-version switch and the request id round trip."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_client.config import ClientConfig, RetryPolicy
from forecast_client.rows import make_batch
from forecast_gateway.dataplane import Tenant


def _client(gw, **kwargs) -> ForecastClient:
    return ForecastClient(ClientConfig(target=gw.target, api_key=gw.api_key("shop"),
                                       retry=RetryPolicy(max_attempts=1), **kwargs))


def _batch(n: int = 4) -> pb.RowBatch:
    return make_batch(["2017-08-16"] * n, list(range(1, n + 1)), ["BREAD/BAKERY"] * n)


def test_predict_through_the_interface(scripted) -> None:
    with _client(scripted) as client:
        values = client.predict("shop", date=["2017-08-16", "2017-08-18"], store_nbr=[3, 4],
                                family=["A", "B"])
        assert values.tolist() == [3000.0, 4002.0]
        m = client.get_metrics("shop")
        assert m.model.version == "v1" and m.origin_date == "2017-07-30"
        base = next(e for e in m.evaluations if e.baseline)
        assert base.name == "seasonal_naive_7" and base.overall.rmsle == 0.9
        assert base.overall.bias != base.overall.bias  # None -> NaN


def test_backend_down_is_unavailable(scripted) -> None:
    scripted.backend.down = True
    with _client(scripted) as client, pytest.raises(ForecastClientError) as info:
        client.predict("shop", date=["2017-08-16"], store_nbr=[1], family=["A"])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and "down" in info.value.details


def test_a_bug_is_internal_with_a_generic_message(scripted) -> None:
    scripted.backend.fail_with = RuntimeError("secret /internal/path exploded")
    with _client(scripted) as client, pytest.raises(ForecastClientError) as info:
        client.predict("shop", date=["2017-08-16"], store_nbr=[1], family=["A"])
    err = info.value
    assert err.code == grpc.StatusCode.INTERNAL
    assert "secret" not in err.details and err.request_id in err.details


def test_request_id_is_taken_from_metadata(scripted) -> None:
    scripted.backend.fail_with = RuntimeError("boom")
    with _client(scripted) as client:
        call = client._stub.Predict.with_call
        with pytest.raises(grpc.RpcError) as info:
            call(pb.PredictRequest(retailer="shop", rows=_batch()), timeout=5,
                 metadata=(("x-request-id", "req-123"), *client.config.call_metadata()))
        assert "req-123" in info.value.details()
        assert ("x-request-id", "req-123") in tuple(info.value.trailing_metadata())


def test_deadline_is_honoured(scripted) -> None:
    scripted.backend.delay_s = 2.0
    with _client(scripted) as client, pytest.raises(ForecastClientError) as info:
        client._unary(client._stub.Predict, pb.PredictRequest(retailer="shop", rows=_batch()), 0.3)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_stream_work_is_bounded_by_its_window_and_cancel_stops_it(scripted) -> None:
    backend = scripted.backend
    backend.delay_s = 0.05
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield _batch(8)
            i += 1

    with _client(scripted) as client:
        stream = client.predict_batches("shop", endless(), max_in_flight=4)
        got = [next(stream) for _ in range(5)]
        assert [g[0] for g in got] == [0, 1, 2, 3, 4]
        stream.close()  # cancels the call
        time.sleep(0.5)
        calls_after_cancel = backend.calls
        time.sleep(0.5)
        assert backend.calls == calls_after_cancel  # no work after the cancel
        window = scripted.server.service.config.stream_window
        assert backend.calls <= 5 + 4 + window  # at most the windows beyond what we read
        assert len(produced) <= 5 + 4 + window  # the client did not run ahead either
        assert backend.max_active == window  # chunks run in parallel, never more than the window


def test_stream_errors_name_the_chunk(scripted) -> None:
    with _client(scripted) as client:
        bad = pb.RowBatch(day=[17394, 17395], store_nbr=[1], family=["A", "A"])
        with pytest.raises(ForecastClientError) as info:
            list(client.predict_batches("shop", [_batch(), bad]))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "chunk '1'" in info.value.details and "rows.store_nbr" in info.value.details


def test_concurrent_unary_calls_while_a_stream_runs(scripted) -> None:
    scripted.backend.delay_s = 0.01
    errors: list[BaseException] = []

    def unary_worker(client: ForecastClient, store: int) -> None:
        try:
            for _ in range(20):
                v = client.predict("shop", date=["2017-08-16"], store_nbr=[store], family=["A"])
                assert v.tolist() == [store * 1000.0]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with _client(scripted) as client:
        threads = [threading.Thread(target=unary_worker, args=(client, s)) for s in range(1, 7)]
        for t in threads:
            t.start()
        results = list(client.predict_batches("shop", (_batch(16) for _ in range(30))))
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert len(results) == 30


def test_training_refused_when_backend_is_down(scripted, sample_csv) -> None:
    with _client(scripted) as client:
        ds = client.upload_dataset("shop", sample_csv)
        scripted.backend.down = True
        with pytest.raises(ForecastClientError) as info:
            client.train("shop", dataset_id=ds.dataset_id)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_graceful_stop_lets_in_flight_calls_finish(scripted) -> None:
    import asyncio

    scripted.backend.delay_s = 1.0
    result: dict = {}

    def slow_call() -> None:
        with _client(scripted) as client:
            try:
                result["values"] = client.predict("shop", date=["2017-08-16"], store_nbr=[2], family=["A"])
            except ForecastClientError as exc:
                result["error"] = exc

    t = threading.Thread(target=slow_call)
    t.start()
    while scripted.backend.active == 0:
        time.sleep(0.01)
    asyncio.run_coroutine_threadsafe(scripted.server.stop(5.0), scripted.loop).result(30)
    t.join(10)
    assert result.get("values") is not None and result["values"].tolist() == [2000.0], result


def test_a_stream_chunk_over_the_row_limit_is_resource_exhausted(scripted) -> None:
    limit = scripted.server.service.config.max_stream_chunk_rows
    n = limit + 1
    big = pb.RowBatch(day=[17394] * n, store_nbr=[1] * n, family=["A"] * n)
    with _client(scripted) as client, pytest.raises(ForecastClientError) as info:
        list(client.predict_batches("shop", [_batch(), big]))
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "chunk '1'" in info.value.details and f"{limit:,}" in info.value.details


def test_live_switch_loads_first_and_unloads_the_previous_version_after(
        scripted, make_artifact) -> None:
    backend, service = scripted.backend, scripted.server.service
    service.models.import_model(Tenant("shop"), make_artifact("v2"))
    service.models.import_model(Tenant("shop"), make_artifact("v3"), make_live=False)
    # A version that does not go live is neither loaded (a SageMaker backend would deploy it
    # to the retailer's endpoint) nor unloads the live one.
    assert backend.model_events == [("load", "v1"), ("load", "v2"), ("unload", "v1")]
    backend.model_events.clear()
    with _client(scripted) as client:
        client.set_live_model("shop", "v1")
        client.set_live_model("shop", "v1")  # already live: nothing to unload
        assert [m.version for m in client.list_models("shop") if m.live] == ["v1"]
    assert backend.model_events == [("load", "v1"), ("unload", "v2"), ("load", "v1")]


def test_stream_answers_a_chunk_before_the_next_one_arrives(scripted) -> None:
    # A ping-pong client: it sends the next chunk only once the previous one is answered.
    answers: queue.Queue = queue.Queue()

    def ping_pong():
        for i in range(3):
            yield pb.PredictStreamRequest(retailer="shop", chunk_id=f"c{i}", rows=_batch(2))
            answers.get(timeout=10)  # the answer must come while the stream stays open

    with _client(scripted) as client:
        responses = client._stub.PredictStream(ping_pong(), timeout=15,
                                             metadata=client.config.call_metadata())
        got = []
        for response in responses:
            got.append(response.chunk_id)
            answers.put(response)
    assert got == ["c0", "c1", "c2"]


def test_stream_keeps_the_version_it_resolved_at_its_first_chunk(scripted, make_artifact) -> None:
    answered: queue.Queue = queue.Queue()

    def chunks():
        yield pb.PredictStreamRequest(retailer="shop", chunk_id="c0", rows=_batch(2))
        answered.get(timeout=10)
        scripted.server.service.models.import_model(Tenant("shop"), make_artifact("v2"))  # v2 goes live
        yield pb.PredictStreamRequest(retailer="shop", chunk_id="c1", rows=_batch(2))

    with _client(scripted) as client:
        versions = []
        for response in client._stub.PredictStream(chunks(), timeout=15,
                                                   metadata=client.config.call_metadata()):
            versions.append(response.model_version)
            answered.put(response)
        assert versions == ["v1", "v1"]
        assert [m.version for m in client.list_models("shop") if m.live] == ["v2"]
