"""Two retailers never see each other's datasets, jobs, models or metrics."""

from __future__ import annotations

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError

pytestmark = pytest.mark.slow


def test_retailers_are_isolated(gateway, trained, sample_csv) -> None:
    """Each retailer with its own key: ids of the other retailer are NOT_FOUND in its own scope
    (naming the other retailer is PERMISSION_DENIED: tests/gateway/api/test_security.py)."""
    with ForecastClient(target=gateway.target, api_key=gateway.api_key("globex")) as client, \
            ForecastClient(target=gateway.target, api_key=gateway.api_key("acme")) as acme:
        other = client.upload_dataset("globex", sample_csv)
        acme_job = trained["job"].job_id

        def not_found(fn, *args, **kwargs) -> str:
            with pytest.raises(ForecastClientError) as info:
                fn(*args, **kwargs)
            assert info.value.code == grpc.StatusCode.NOT_FOUND, info.value
            return info.value.details

        # globex cannot reach acme's job, dataset or model version...
        not_found(client.get_job, "globex", acme_job)
        not_found(client.cancel_job, "globex", acme_job)
        assert all(j.job_id != acme_job for j in client.list_jobs("globex"))
        not_found(client.train, "globex", dataset_id=trained["dataset"].dataset_id)
        not_found(client.set_live_model, "globex", "v1")
        assert client.list_models("globex") == []
        with pytest.raises(ForecastClientError) as info:
            client.predict("globex", date=["2017-08-16"], store_nbr=[1], family=["BREAD/BAKERY"])
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
        # ... and acme cannot reach globex's dataset.
        not_found(acme.train, "acme", dataset_id=other.dataset_id)
        # Listing jobs is per retailer.
        assert all(j.retailer == "acme" for j in acme.list_jobs("acme"))
