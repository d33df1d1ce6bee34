"""Every status code the API promises, over a real channel. Never UNKNOWN, never INTERNAL for
bad input."""

from __future__ import annotations

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb

pytestmark = pytest.mark.slow


def _code(fn, *args, **kwargs) -> ForecastClientError:
    with pytest.raises(ForecastClientError) as info:
        fn(*args, **kwargs)
    assert info.value.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), info.value
    assert info.value.request_id
    return info.value


@pytest.fixture()
def client(gateway):
    with ForecastClient(target=gateway.target) as c:
        yield c


def test_invalid_argument_names_the_field(client, trained, sample_csv) -> None:
    err = _code(client.get_job, "Not A Retailer!", "job-1")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "retailer" in err.details
    # Column lengths differ.
    req = pb.PredictRequest(retailer="acme", rows=pb.RowBatch(day=[17394, 17395], store_nbr=[1],
                                                               family=["BREAD/BAKERY"] * 2))
    err = _code(client._unary, client._stub.Predict, req, 10)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "rows.store_nbr" in err.details
    # A series the model never saw: the library's ForecastRequestError.
    err = _code(client.predict, "acme", date=["2017-08-16"], store_nbr=[999], family=["BREAD/BAKERY"])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "999" in err.details
    # Bad model kind, bad horizon.
    ds = trained["dataset"].dataset_id
    err = _code(client.train, "acme", dataset_id=ds, model_kind="prophet")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "model_kind" in err.details
    err = _code(client.train, "acme", dataset_id=ds, horizon=1000)
    assert "horizon" in err.details
    # file:// URIs are off by default.
    err = _code(client.train, "acme", data_uri=f"file://{sample_csv}")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "data_uri" in err.details


def test_invalid_upload_names_column_rule_and_rows(client) -> None:
    bad = b"date,store_nbr,family,sales\n2017-01-01,1,BREAD,1\n2017-01-02,x,BREAD,2\n"
    err = _code(client.upload_dataset, "acme", bad, filename="bad.csv")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "store_nbr" in err.details and "2" in err.details
    missing = b"date,store_nbr,sales\n2017-01-01,1,1\n"
    err = _code(client.upload_dataset, "acme", missing, filename="missing.csv")
    assert "family" in err.details
    err = _code(client.upload_dataset, "acme", b"a,b\n", filename="data.txt")
    assert "format" in err.details


def test_upload_without_header_is_invalid(client) -> None:
    req = iter([pb.UploadDatasetRequest(chunk=b"abc")])
    err = _code(client._unary, client._stub.UploadDataset, req, 10)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "header" in err.details


def test_not_found(client, trained) -> None:
    # (Another retailer, existing or not, is PERMISSION_DENIED: tests/gateway/api/test_security.py.)
    assert _code(client.get_job, "acme", "job-000000000000").code == grpc.StatusCode.NOT_FOUND
    err = _code(client.train, "acme", dataset_id="ds-000000000000")
    assert err.code == grpc.StatusCode.NOT_FOUND and "dataset" in err.details
    err = _code(client.predict, "acme", date=["2017-08-16"], store_nbr=[1], family=["BREAD/BAKERY"],
                model_version="v99")
    assert err.code == grpc.StatusCode.NOT_FOUND and "v99" in err.details
    assert _code(client.set_live_model, "acme", "v99").code == grpc.StatusCode.NOT_FOUND


def test_failed_precondition_without_a_model(gateway, sample_csv) -> None:
    with ForecastClient(target=gateway.target, api_key=gateway.api_key("fresh-co")) as client:
        client.upload_dataset("fresh-co", sample_csv)
        err = _code(client.predict, "fresh-co", date=["2017-08-16"], store_nbr=[1],
                    family=["BREAD/BAKERY"])
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "no trained model" in err.details
        assert _code(client.get_metrics, "fresh-co").code == grpc.StatusCode.FAILED_PRECONDITION


def test_failed_precondition_cancelling_a_finished_job(client, trained) -> None:
    err = _code(client.cancel_job, "acme", trained["job"].job_id)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION


def test_resource_exhausted_over_the_limits(client, trained) -> None:
    # The session gateway allows 5,000 rows per Predict and 2 MiB uploads.
    n = 5001
    err = _code(client.predict, "acme", date=["2017-08-16"] * n, store_nbr=[1] * n,
                family=["BREAD/BAKERY"] * n)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "5,000" in err.details
    big = b"x" * (3 * 1024 * 1024)
    err = _code(client.upload_dataset, "acme", big, filename="big.csv")
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit" in err.details


def test_bad_hyperparameter_is_rejected_before_a_job_exists(client, trained, fast_hp) -> None:
    jobs_before = len(client.list_jobs("acme"))
    err = _code(client.train, "acme", dataset_id=trained["dataset"].dataset_id,
                hyperparameters={**fast_hp, "num_round": "lots"})
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "hyperparameters['num_round']" in err.details and "'lots'" in err.details
    err = _code(client.train, "acme", dataset_id=trained["dataset"].dataset_id,
                hyperparameters={"no_such_knob": "1"})
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "no_such_knob" in err.details
    assert len(client.list_jobs("acme")) == jobs_before


def test_a_job_that_fails_in_training_carries_the_reason(client, trained, fast_hp) -> None:
    import pandas as pd

    short = pd.DataFrame({"date": pd.date_range("2017-01-01", periods=40).strftime("%Y-%m-%d"),
                          "store_nbr": 1, "family": "BREAD/BAKERY", "sales": 3.0})
    dataset = client.upload_dataset("acme", short.to_csv(index=False).encode(),
                                    filename="short.csv")
    job = client.train("acme", dataset_id=dataset.dataset_id, hyperparameters=fast_hp)
    final = client.wait_for_job("acme", job.job_id, timeout_s=120)
    assert final.state == pb.JOB_STATE_FAILED
    assert "history covers 40 days" in final.failure_reason
    # The live model did not change.
    assert [m.version for m in client.list_models("acme") if m.live] == ["v1"]


def test_unavailable_when_the_gateway_is_down() -> None:
    from forecast_client import ClientConfig, RetryPolicy
    from sagemaker_job import free_port

    config = ClientConfig(target=f"127.0.0.1:{free_port()}", retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.05))
    with ForecastClient(config) as down:
        err = _code(down.list_models, "acme")
    assert err.code == grpc.StatusCode.UNAVAILABLE
