"""Fixtures of the SageMaker backend's tests: AWS clients on the session's moto server with every
request checked against the service model (`validation.enforce`, the requests recorded), a
fresh bucket per test, Stubber-driven clients for what moto cannot express, and a real model
artifact packed as model.tar.gz."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.stub import Stubber
from forecast_gateway.backends.sagemaker.aws import AwsClients
from moto_server import MotoServer
from sagemaker_helpers import GOLDEN_ARTIFACT, SESSION, Recorder, client, pack


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture()
def bucket(moto_server: MotoServer) -> str:
    """A new bucket on moto for this test."""
    name = f"forecast-{uuid.uuid4().hex[:12]}"
    SESSION.client(
        "s3", endpoint_url=moto_server.url).create_bucket(Bucket=name)
    return name


@pytest.fixture()
def moto_clients(moto_server: MotoServer, recorder: Recorder) -> AwsClients:
    """s3, sagemaker and sagemaker-runtime clients on moto."""
    return AwsClients(s3=client("s3", moto_server, recorder),
                      sagemaker=client("sagemaker", moto_server, recorder),
                      runtime=client("sagemaker-runtime", moto_server, recorder))


@pytest.fixture()
def stubbed(moto_server: MotoServer, recorder: Recorder) -> Iterator[tuple[AwsClients, Stubber,
                                                                           Stubber]]:
    """s3 on moto; sagemaker and sagemaker-runtime answered by Stubbers (checked the same way).
    Yields (clients, sagemaker stubber, runtime stubber); every stubbed answer must be used."""
    sagemaker = client("sagemaker", None, recorder)
    runtime = client("sagemaker-runtime", None, recorder)
    with Stubber(sagemaker) as sm_stub, Stubber(runtime) as rt_stub:
        yield (AwsClients(s3=client("s3", moto_server, recorder), sagemaker=sagemaker,
                          runtime=runtime), sm_stub, rt_stub)
        sm_stub.assert_no_pending_responses()
        rt_stub.assert_no_pending_responses()


@pytest.fixture(scope="session")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real artifact (the golden v1 fixture) as model.tar.gz."""
    return pack(GOLDEN_ARTIFACT, tmp_path_factory.mktemp("model") / "model.tar.gz")
