"""The docker backend's live-version switch, driven in process so the race is deterministic: a
request that resolved the old version just before the switch is answered by the old, draining
container, and does not start that version again."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from docker_helpers import backend_containers, future_rows, wait_until
from forecast_client.rows import make_batch
from forecast_gateway.api.servicer import rows_from_pb
from forecast_gateway.backends.docker_backend import DockerBackend
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import ModelRef, RowColumns

pytestmark = pytest.mark.docker

def _rows(days: int) -> RowColumns:
    """The sample's next `days` days, as the servicer hands them to a backend."""
    frame = future_rows(days)
    return rows_from_pb(make_batch(frame["date"], frame["store_nbr"], frame["family"],
                                   frame["onpromotion"]))


@pytest.fixture
def backend(inference_image: str) -> Iterator[DockerBackend]:
    config = GatewayConfig(docker_inference_image=inference_image, docker_drain_s=3.0)
    backend = DockerBackend.from_config(config)
    try:
        yield backend
    finally:
        backend.close("test over")
    assert backend_containers("inference") == [], "close() removes every inference container"


def test_old_version_drains_instead_of_starting_again(backend: DockerBackend, model_dir: Path,
                                                      tmp_path: Path) -> None:
    refs = []
    for version in ("v1", "v2"):
        path = tmp_path / version
        shutil.copytree(model_dir, path)
        refs.append(ModelRef("switchco", version, path))
    old, new = refs
    rows = _rows(3)

    backend.load_model(old)
    first = backend.predict(old, rows)
    backend.load_model(new)  # the new one starts; the old one keeps serving until unloaded
    assert len(backend_containers("inference")) == 2
    old_container = backend.containers()["switchco/v1"]

    backend.unload_model(old)  # what the gateway does right after the live switch
    # A request that resolved v1 a moment before the switch: the draining container answers.
    np.testing.assert_allclose(backend.predict(old, rows), first)
    assert old_container in backend_containers("inference")
    assert len(backend_containers("inference")) == 2, "v1 was not started a second time"
    assert list(backend.containers()) == ["switchco/v2"]

    started = time.monotonic()
    wait_until(lambda: old_container not in backend_containers("inference"), 60,
               "the retired container to be removed")
    assert time.monotonic() - started >= 2.0, "it was stopped only after the drain delay"
    assert backend_containers("inference") == [backend.containers()["switchco/v2"]]

    # Asked for again once it has stopped, v1 gets a fresh container.
    np.testing.assert_allclose(backend.predict(old, rows), first)
    assert len(backend_containers("inference")) == 2
