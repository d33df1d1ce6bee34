"""ExportForecasts on the docker backend: the data plane over a real `DockerBackend` (the
inference image in a container, POST /invocations with levels) writes the file, and it holds
what Forecast answers through the same container."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from docker_helpers import backend_containers, docker

pytestmark = pytest.mark.docker


def test_an_export_through_the_inference_container(tmp_path: Path, inference_image: str,
                                                   model_dir: Path) -> None:
    from forecast_gateway.backends.docker_backend import DockerBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant
    from forecast_gateway.domain import JobState

    files = tmp_path / "files"
    (files / "dock").mkdir(parents=True)
    config = GatewayConfig(data_dir=tmp_path / "data", allow_file_uris=True, file_uri_root=files,
                           docker_inference_image=inference_image, docker_drain_s=1,
                           docker_max_body_bytes=200_000, monitor_max_series=0)
    service = ForecastService(config, DockerBackend.from_config(config))
    try:
        service.models.import_model(Tenant("dock"), model_dir)
        service.exports._chunk_rows = 64          # several chunks, several invocations each
        target = files / "dock" / "plan.parquet"
        job = service.exports.start(Tenant("dock"), "", 4, [], [], [80.0], target.as_uri(), "")
        deadline = time.monotonic() + 300
        while not job.state.terminal and time.monotonic() < deadline:
            time.sleep(0.2)
            job = service.exports.get(Tenant("dock"), job.export_id)
        assert job.state == JobState.SUCCEEDED, job.failure_reason
        want = service.planning.forecast(Tenant("dock"), "", 4, [], [], [80.0], None)
        table = pq.read_table(target)
        got = table.to_pandas()
        assert job.rows == len(got) == len(want.values) and job.series_done == job.series_total
        assert (table.column("date").cast("int32").to_numpy() == want.rows.day).all()
        assert (got["store_nbr"].to_numpy() == want.rows.store_nbr).all()
        np.testing.assert_allclose(got["sales"], want.values, rtol=1e-9)
        np.testing.assert_allclose(got["lo-80"], want.bounds[80.0][0], rtol=1e-9)
        np.testing.assert_allclose(got["hi-80"], want.bounds[80.0][1], rtol=1e-9)
    finally:
        service.close()
        left = backend_containers("inference")
        if left:
            docker("rm", "-f", *left, check=False)
        assert not left, f"the backend left containers behind: {left}"
