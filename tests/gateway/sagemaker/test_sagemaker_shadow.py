"""A version in shadow on the SageMaker backend (moto over HTTP, every request checked against
the service model): it gets the retailer's shadow endpoint, so the live endpoint keeps serving
the live version; a live Predict invokes the live endpoint and the shadow's forecast of the same
rows the shadow endpoint; when the trial ends the shadow endpoint is deleted."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from forecast_gateway.backends.sagemaker import endpoints
from forecast_gateway.backends.sagemaker.aws import AwsClients
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.dataplane import Tenant
from moto_server import MotoServer
from sagemaker_helpers import GOLDEN_ARTIFACT, Recorder, settings

from forecasting import artifact
from forecasting.promotion import Decision


@pytest.fixture()
def backend(moto_clients: AwsClients, bucket: str):
    made = SageMakerBackend(settings(bucket), moto_clients, first_pause_s=0.01)
    yield made
    made.close("test over")


def _config(sm, endpoint: str) -> str:
    return sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]


def test_the_version_in_shadow_gets_its_own_endpoint(backend, moto_clients: AwsClients,
                                                     moto_server: MotoServer, recorder: Recorder,
                                                     gateway_over) -> None:
    from forecast_client import ForecastClient

    retailer = f"shade_{uuid.uuid4().hex[:8]}"
    gateway = gateway_over(backend)
    service = gateway.server.service
    service.models.import_model(Tenant(retailer), GOLDEN_ARTIFACT)                   # v1, live
    service.models.import_model(Tenant(retailer), GOLDEN_ARTIFACT, make_live=False)  # v2
    with service.registry.db.write() as conn:          # as a promote=shadow job leaves it
        service.registry._set_shadow(conn, retailer, "v2")
    service.shadows.follow()
    sm = moto_clients.sagemaker
    live, shadow = endpoints.endpoint_name(retailer), endpoints.shadow_endpoint_name(retailer)
    assert "-v1-" in _config(sm, live) and "-v2-" in _config(sm, shadow)

    table = artifact.load_history(GOLDEN_ARTIFACT / "history.parquet")
    day = np.datetime64(table.last_date, "D") + 1
    moto_server.set_endpoint_results(["1.5\n2.5\n"])
    with ForecastClient(target=gateway.target, api_key=gateway.api_key(retailer)) as client:
        got = client.predict(retailer, date=[str(day), str(day + 1)],
                             store_nbr=[int(table.store_nbr[0])] * 2,
                             family=[str(table.family[0])] * 2)
        assert got.tolist() == [1.5, 2.5]
        service.shadows.predictor.flush()
        invoked = [p["EndpointName"] for op, p in recorder.calls if op == "InvokeEndpoint"]
        assert invoked == [live, shadow]          # the live answer first, then the shadow's
        assert "-v1-" in _config(sm, live)        # the live endpoint never served v2

    # Another replica rejects the challenger; this one follows the database: the shadow
    # endpoint is deleted, the live one still serves v1. (A promotion deploys the version to
    # the live endpoint with UpdateEndpoint, which moto answers with HTTP 500.)
    assert service.registry.end_shadow(retailer, "v2", {"state": "rejected"}, ["v2"], "v2",
                                       Decision("shadow", False, reason="worse"))
    service.shadows.follow()
    names = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert live in names and shadow not in names
    assert "-v1-" in _config(sm, live)
    assert service.shadows.predictor.pointers.get(retailer) is None
