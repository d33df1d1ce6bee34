"""Shared fixtures: a real gateway process on 127.0.0.1 (port 0) and a retailer with a model.

The gateway is `forecast_gateway.testing.process.GatewayProcess` (the launcher the benchmarks and the
demo use too); every fixture stops what it started.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from forecast_gateway.testing.process import GatewayProcess
from moto_server import DUMMY_AWS_ENV, MotoServer
from postgres_server import PostgresServer
from store_engine import ENGINE, database_url_for

from forecasting import forecast

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "train.csv"
FAST_HP = {"num_round": "30", "early_stopping_rounds": "5"}


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The bundled sample history (data/sample/train.csv)."""
    return SAMPLE


@pytest.fixture(scope="session")
def fast_hp() -> dict[str, str]:
    """Hyperparameters that train the sample in seconds."""
    return dict(FAST_HP)


@pytest.fixture(scope="session", autouse=True)
def _gateways_on_the_test_engine() -> Iterator[None]:
    """With FORECAST_TEST_DATABASE=postgresql every GatewayProcess a test starts gets its own
    PostgreSQL database (`store_engine`) unless the test names one."""
    if ENGINE != "postgresql":
        yield
        return
    original = GatewayProcess.__init__

    def init(self, data_dir, env=None, **kwargs):
        env = dict(env or {})
        env.setdefault("FORECAST_GATEWAY_DATABASE_URL", database_url_for(data_dir))
        # A restart on the same data dir is the same gateway (it fails its own cut-off jobs).
        env.setdefault("FORECAST_GATEWAY_GATEWAY_ID", f"gw-{Path(data_dir).resolve().name}")
        original(self, data_dir, env, **kwargs)

    GatewayProcess.__init__ = init  # type: ignore[method-assign]
    yield
    GatewayProcess.__init__ = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on 127.0.0.1:<free port>, a throwaway cluster for the session (its
    directory under /tmp, where the `postgres` user can reach it); `postgres.create()` makes an
    empty database and returns its URL."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="forecast-pg-"))).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """An empty database of each engine the store runs on: the embedded SQLite file, and a new
    database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("postgres").create()


@pytest.fixture()
def gateway_factory() -> Iterator[Callable[..., GatewayProcess]]:
    """`gateway_factory(data_dir, env=None)` -> an unstarted GatewayProcess; all are stopped at
    teardown (for tests that restart or kill gateways)."""
    made: list[GatewayProcess] = []

    def make(data_dir: Path, env: dict[str, str] | None = None) -> GatewayProcess:
        gw = GatewayProcess(data_dir, env)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway for the session, with small limits so the limit tests stay cheap.

    Retailer `acme`'s API key is exported as FORECAST_API_KEY for the rest of the session, as a
    user would do, so the SDK and the CLI act for acme by default; a test acting for another
    retailer asks `gateway.api_key(retailer)` for its key."""
    data_dir = tmp_path_factory.mktemp("gateway") / "data"
    with GatewayProcess(data_dir, env={
        "FORECAST_GATEWAY_MAX_PREDICT_ROWS": "5000",
        "FORECAST_GATEWAY_MAX_STREAM_CHUNK_ROWS": "5000",
        "FORECAST_GATEWAY_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    }) as gw, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORECAST_API_KEY", gw.api_key("acme"))
        yield gw


@pytest.fixture(scope="session")
def future_rows() -> pd.DataFrame:
    """The 16 days after the sample's history, for every sample series, sorted by date (so a
    series' days are spread over a stream's chunks), with an id column."""
    history = pd.read_csv(SAMPLE, usecols=["date", "store_nbr", "family"])
    rows = forecast.future_rows(history, 16).sort_values(["date", "store_nbr", "family"])
    rows.insert(0, "id", range(len(rows)))
    return rows.reset_index(drop=True)


@pytest.fixture(scope="session")
def trained(gateway: GatewayProcess) -> dict:
    """Retailer `acme` with an uploaded sample and one trained (live) model; also the events seen."""
    from forecast_client import ForecastClient

    with ForecastClient(target=gateway.target) as client:
        client.wait_until_ready(10)
        dataset = client.upload_dataset("acme", SAMPLE)
        job = client.train("acme", dataset_id=dataset.dataset_id, hyperparameters=FAST_HP)
        events = list(client.watch_job("acme", job.job_id))
    return {"retailer": "acme", "dataset": dataset, "job": job, "events": events,
            "final": events[-1]}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto in server mode on 127.0.0.1 (S3 and the SageMaker control plane over real HTTP),
    with dummy AWS credentials and region set for the whole session (no test can reach AWS)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as server:
            yield server
