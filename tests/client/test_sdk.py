"""The SDK as a user would use it: typed config, DataFrames in and out, bulk streaming, errors."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pandas as pd
import pytest
from forecast_client import (
    ClientConfig,
    ForecastClient,
    ForecastClientError,
    RetryPolicy,
    Timeouts,
    TlsConfig,
    pb,
)
from forecast_client.rows import day_number, day_to_iso, make_batch, series_cuts


def test_config_is_typed_and_validated() -> None:
    config = ClientConfig(target="example:443", retry=RetryPolicy(max_attempts=3),
                          timeouts=Timeouts(unary_s=5))
    with pytest.raises(AttributeError):
        config.target = "x"  # type: ignore[misc]  # frozen
    with pytest.raises(ValueError):
        ClientConfig(target="no-port")
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=9)
    with pytest.raises(ValueError):
        TlsConfig(private_key=b"k")


def test_service_config_retries_every_call_and_balances_round_robin() -> None:
    sc = json.loads(ClientConfig(retry=RetryPolicy(max_attempts=4)).service_config_json())
    [retrying] = sc["methodConfig"]
    assert retrying["retryPolicy"]["maxAttempts"] == 4
    assert retrying["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    # Train too: every Train carries a request id, so a retry starts no second job.
    assert retrying["name"] == [{"service": "forecastapi.v1.ForecastService"},
                                {"service": "forecastapi.v1.MonitoringService"}]
    assert sc["loadBalancingConfig"] == [{"round_robin": {}}]
    first = json.loads(ClientConfig(load_balancing="pick_first").service_config_json())
    assert first["loadBalancingConfig"] == [{"pick_first": {}}]
    off = json.loads(ClientConfig(retry=RetryPolicy(max_attempts=1)).service_config_json())
    assert "retryPolicy" not in off["methodConfig"][0]
    assert ClientConfig(target="dns:///gateway:50051").target == "dns:///gateway:50051"
    with pytest.raises(ValueError, match="load_balancing"):
        ClientConfig(load_balancing="random")


def test_the_target_defaults_to_forecast_target_as_in_the_cli(monkeypatch) -> None:
    monkeypatch.setenv("FORECAST_TARGET", "dns:///gateway:50051")
    assert ClientConfig().target == "dns:///gateway:50051"
    monkeypatch.setenv("FORECAST_TARGET", "")
    assert ClientConfig().target == "127.0.0.1:50051"


def test_rows_are_columnar_day_numbers() -> None:
    assert day_number("2017-08-16") == 17394 and day_to_iso(17394) == "2017-08-16"
    batch = make_batch(pd.Series(["2017-08-16", "2017-08-17"]), np.array([1, 2]), ["A", "B"], [0, 3])
    assert list(batch.day) == [17394, 17395] and list(batch.store_nbr) == [1, 2]
    assert list(batch.onpromotion) == [0, 3]
    with pytest.raises(ValueError, match="store_nbr"):
        make_batch(["2017-08-16"], [1, 2], ["A"])
    with pytest.raises(ValueError, match="date"):
        make_batch(["16/08/2017"], [1], ["A"])


def test_every_public_method_has_a_docstring() -> None:
    public = [n for n in dir(ForecastClient) if not n.startswith("_") or n in ("__init__",)]
    missing = [n for n in public if callable(getattr(ForecastClient, n)) and not getattr(ForecastClient, n).__doc__]
    assert missing == []


def test_dataframes_in_and_out(gateway, trained, future_rows: pd.DataFrame) -> None:
    with ForecastClient(ClientConfig(target=gateway.target)) as client:
        client.wait_until_ready(5)
        seen: list[tuple[int, int]] = []
        out = client.predict_frame("acme", future_rows, chunk_rows=100,
                                   on_progress=lambda d, t: seen.append((d, t)))
        assert isinstance(out, pd.DataFrame) and len(out) == len(future_rows)
        assert list(out.columns) == [*future_rows.columns, "sales"]
        assert seen[-1] == (len(future_rows), len(future_rows))
        days = future_rows.groupby(["store_nbr", "family"]).size().max()
        series = future_rows.groupby(["store_nbr", "family"]).ngroups
        assert len(seen) == -(-series // (100 // days)), "whole series per chunk, filled up"
        metrics = client.metrics_frame("acme")
        assert set(metrics["model"]) >= {"xgboost"} and metrics["baseline"].sum() == 1
        empty = client.predict_frame("acme", future_rows.head(0))
        assert len(empty) == 0 and "sales" in empty


def test_bulk_chunks_never_split_a_series(gateway, trained, future_rows: pd.DataFrame) -> None:
    """Date-sorted rows with promotions, streamed in small chunks, get exactly the forecasts of
    one unary call: a series' later days depend on its earlier days' promotions."""
    rows = future_rows.copy()
    rows["onpromotion"] = (np.arange(len(rows)) * 7) % 23
    with ForecastClient(target=gateway.target) as client:
        whole = client.predict("acme", date=rows["date"], store_nbr=rows["store_nbr"],
                               family=rows["family"], onpromotion=rows["onpromotion"])
        streamed = client.predict_frame("acme", rows, chunk_rows=40)["sales"].to_numpy()
    np.testing.assert_allclose(streamed, whole, rtol=1e-9)


def test_errors_carry_the_status_code(gateway) -> None:
    with ForecastClient(target=gateway.target) as client, pytest.raises(ForecastClientError) as info:
        client.get_job("acme", "job-1")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert str(info.value).startswith("NOT_FOUND: ")


def test_wait_until_ready_fails_fast_when_nothing_listens() -> None:
    with ForecastClient(target="127.0.0.1:1") as client, pytest.raises(ForecastClientError) as info:
        client.wait_until_ready(0.5)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_predict_frame_rejects_bad_input_before_any_call() -> None:
    """A missing column or an unreadable value is a ValueError here, not a stream error."""
    frame = pd.DataFrame({"date": ["2017-08-16"], "store_nbr": ["x"], "family": ["A"]})
    with ForecastClient(target="127.0.0.1:1") as client:
        with pytest.raises(ValueError, match="missing column"):
            client.predict_frame("acme", frame.drop(columns="family"))
        with pytest.raises(ValueError, match="store_nbr"):
            client.predict_frame("acme", frame)


def test_concurrent_clients(gateway, trained, future_rows: pd.DataFrame) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rows = future_rows.head(24)
    with ForecastClient(target=gateway.target) as ref_client:
        expected = ref_client.predict("acme", date=rows["date"], store_nbr=rows["store_nbr"],
                                      family=rows["family"])

    def worker(i: int) -> np.ndarray:
        with ForecastClient(target=gateway.target) as client:  # separate channels
            if i % 2:
                return client.predict_frame("acme", rows, chunk_rows=5)["sales"].to_numpy()
            return client.predict("acme", date=rows["date"], store_nbr=rows["store_nbr"],
                                  family=rows["family"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(16)))
    for r in results:
        np.testing.assert_allclose(r, expected, rtol=1e-9)


def test_generated_code_is_typed() -> None:
    from pathlib import Path

    import forecast_client._gen.forecastapi.v1 as gen

    folder = Path(gen.__file__).parent
    assert (folder / "forecast_service_pb2.pyi").exists()
    assert (folder / "forecast_service_pb2_grpc.pyi").exists()
    assert pb.DESCRIPTOR.package == "forecastapi.v1"


def test_series_cuts_never_split_a_series() -> None:
    codes = np.array([0, 0, 0, 1, 2, 2])
    assert series_cuts(codes, 2) == [(0, 3), (3, 4), (4, 6)], "a long series gets its own chunk"
    assert series_cuts(codes, 4) == [(0, 4), (4, 6)]
    assert series_cuts(codes[:0], 4) == []


def test_no_gateway_is_one_sentence_saying_what_to_do() -> None:
    """A closed port on 127.0.0.1 and a name that does not resolve: the SDK's error names the
    target and the fix instead of gRPC's transport text."""
    import socket

    with socket.socket() as sock:   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    fast = RetryPolicy(max_attempts=2, initial_backoff_s=0.05, max_backoff_s=0.1)
    for target, reason in ((closed, "Connection refused"),
                           ("nosuchhost.invalid:50051", "")):
        with ForecastClient(ClientConfig(target=target, retry=fast, api_key="k")) as client, \
                pytest.raises(ForecastClientError) as info:
            client.list_models("acme")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert str(info.value).startswith(f"UNAVAILABLE: cannot reach the gateway at {target} ("), \
            str(info.value)
        assert reason in info.value.details
        assert info.value.details.endswith("or FORECAST_TARGET")


def test_a_call_needing_a_missing_extra_names_the_pip_extra() -> None:
    """As after `pip install ./client` without extras: pandas and matplotlib cannot be imported
    (a child interpreter where importing them fails)."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["pandas"] = None; sys.modules["matplotlib"] = None
from forecast_client import ForecastClient, MissingExtraError, plots
client = ForecastClient(target="127.0.0.1:1")
for call in (lambda: client.forecast("acme", days=3), plots.require_matplotlib):
    try:
        call()
    except MissingExtraError as exc:
        print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()
    assert out == [
        ("DataFrames in and out needs pandas, which is not installed: pip install "
         "'forecast-client[pandas]'"),
        "plotting needs matplotlib, which is not installed: pip install 'forecast-client[plot]'"]
