"""Seeded fuzzing of the HTTP/JSON face over raw sockets, next to the gRPC fuzz test: 2,000
malformed requests (hostile JSON, bodies that are not what their headers say, broken request
heads, the key with bytes after it) get 0 5xx, 0 non-JSON error bodies and 0 answers without a
body; the key is in no answer and in no line of the gateway's log; the gateway then serves the
same live model and the same forecasts. `make bench` runs 10,000 (bench/http_fuzz_bench.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from forecast_client import ForecastClient
from store_engine import database_url_for

from bench import fuzz_bench, http_fuzz_bench

pytestmark = pytest.mark.slow
REQUESTS = 2_000
GOLDEN = Path(__file__).resolve().parents[2] / "forecasting" / "fixtures" / "artifact_v1"


def test_malformed_http_gets_json_4xx_and_never_the_key(tmp_path) -> None:
    from forecast_gateway.testing.process import GatewayProcess

    from forecasting.predictor import Predictor

    data_dir = tmp_path / "data"
    fuzz_bench.import_model(data_dir, GOLDEN, database_url_for(data_dir))
    gw = GatewayProcess(data_dir, http=True).start()
    try:
        key = gw.api_key(fuzz_bench.RETAILER)
        rows = Predictor.load(GOLDEN).future_rows(2)
        columns = {"date": rows["date"].tolist(), "store_nbr": rows["store_nbr"].tolist(),
                   "family": rows["family"].tolist()}
        with ForecastClient(target=gw.target, api_key=key) as client:
            before = client.predict(fuzz_bench.RETAILER, **columns)

        report = http_fuzz_bench.run(gw.http_port, key, REQUESTS, seed=21)
        assert report.requests == REQUESTS
        assert report.forbidden == [], report.as_dict()
        assert sum(n for s, n in report.statuses.items() if s.startswith("4")) > REQUESTS // 2

        assert gw.proc.poll() is None
        assert key not in gw.log_path.read_text(errors="replace")
        with ForecastClient(target=gw.target, api_key=key) as client:
            models = client.list_models(fuzz_bench.RETAILER)
            assert [(m.version, m.live) for m in models] == [("v1", True)]
            assert (client.predict(fuzz_bench.RETAILER, **columns) == before).all()
    finally:
        gw.stop()
