"""The gateway fleet (issue 19): replicas on one PostgreSQL database behind the SDK's round-robin
channel, beside one gateway on the embedded SQLite database, all in one run on 127.0.0.1.

Setup: a throwaway PostgreSQL server (`tests/postgres_server.py`, Debian's binaries), a small
model trained once in this process (20 stores x 33 families of synthetic history, 30 rounds),
imported twice (versions v1 live and v2) into a SQLite data dir and into a data dir the three
replicas share (each through its own symlink) on one database. Every gateway keeps its defaults
(`--fleet-poll-s` 0.5, served-forecast recording on).

1. Predict: CLIENT_PROCS worker processes x CLIENT_THREADS threads (each thread its own
   `ForecastClient`) call flat out for `window_s` seconds: unary `Predict` (one series x 16
   days, the series cycled) or bulk `predict_frame` (every series x 16 days, 10,560 rows, one
   PredictStream). Sides: the SQLite gateway, and 1, 2 and 3 replicas on PostgreSQL
   (`ipv4:A[,B[,C]]`, round robin; the unused replicas stay up, idle), interleaved for
   `repeats` rounds. The CPU seconds of the gateways, PostgreSQL and the clients over each
   window say what bound it (2 cores: 2.0 CPU s a second is the machine).
2. Registry operations per second, a fresh SQLite file against a fresh PostgreSQL database,
   through the `Registry` class (1 and 4 threads, OP_S seconds each): ListModels (20
   versions), a Train's records (add_job, claim_job, as many update_job as the real Train of
   step 4 made, next_model_number and add_model with the job's last update under the publish
   lock, making it live), a live switch (set_live). Through gRPC: ListModels from the client
   threads, SetLiveModel from one thread.
3. A live switch's reach: SetLiveModel on replica A, then Predict on B and C every POLL_MS ms
   until each answers with the new version; SWITCHES switches a random fraction of a poll
   apart (the first, which also loads the version on B and C, reported apart).
4. What the database holds: one real Train through the fleet (the bundled sample, tests'
   FAST_HP), then its job, model and key rows copied SIZE_JOBS times over SIZE_RETAILERS
   retailers, with SIZE_SERVED served-forecast rows, into a fresh database of each engine:
   bytes a row per table (PostgreSQL: table, indexes and TOAST). Also the fleet database's
   transactions a second while idle, its connections under load, and one artifact's size.

    python -m bench.fleet_bench [--window 5] [--repeats 3] [--output .bench/fleet.json]

`run(window_s, repeats)` is what `bench.run_all` calls (`--skip-fleet` leaves it out). The load
windows live in `bench/fleet_load.py`, the registry and size measurements in
`bench/fleet_store.py`, the report in `bench/fleet_report.py`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from bench.fleet_load import (
    CLIENT_PROCS,
    CLIENT_THREADS,
    HORIZON,
    RETAILER,
    commits,
    connections,
    init_worker,
    postgres_pids,
    summary,
    window,
)
from bench.fleet_report import POLL_MS, SIDES, SWITCHES, markdown
from bench.fleet_store import FAST_HP, rate, registry_ops, sizes

ROOT = Path(__file__).resolve().parent.parent
TRAIN_RETAILER = "bench-train"   # the real Train's retailer: its model never replaces v1
MODEL_HP = {"num_round": "30", "early_stopping_rounds": "5", "refit": "false"}
IDLE_S = 5.0
LOG_ENV = {"FORECAST_GATEWAY_LOG_LEVEL": "WARNING"}
__all__ = ["markdown", "run"]


# -- setup -------------------------------------------------------------------------------------

def _train_model(directory: Path) -> Path:
    from forecasting import synthetic, training

    history = synthetic.generate(20, 33, "2016-06-01")
    training.train(history, dict(MODEL_HP), log=lambda _: None).save(directory)
    return directory


def _import(data_dir: Path, artifact: Path, database_url: str = "") -> list[str]:
    """RETAILER's versions in a new data dir (and database): v1 live, v2 not."""
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant

    service = ForecastService(GatewayConfig(data_dir=data_dir, database_url=database_url),
                              LocalBackend(training_slots=1))
    try:
        return [service.models.import_model(Tenant(RETAILER), artifact, make_live=(i == 0)).version
                for i in range(2)]
    finally:
        service.close()


class _Fleet:
    """The SQLite gateway and the three replicas, their keys, the load pool and samplers."""

    def __init__(self, pg, url: str, root: Path, artifact: Path):
        from forecast_gateway.testing.process import GatewayProcess

        self.pg, self.url = pg, url
        self.versions = _import(root / "sqlite" / "data", artifact)
        shared = root / "shared"
        assert _import(shared, artifact, url) == self.versions
        self.sqlite = GatewayProcess(root / "sqlite" / "data", env=LOG_ENV)
        self.replicas = []
        for name in "abc":
            (root / name).mkdir()
            (root / name / "data").symlink_to(shared, target_is_directory=True)
            self.replicas.append(GatewayProcess(root / name / "data", env={
                **LOG_ENV, "FORECAST_GATEWAY_DATABASE_URL": url,
                "FORECAST_GATEWAY_GATEWAY_ID": f"gw-{name}"}))
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda gw: gw.start(), [self.sqlite, *self.replicas]))
        self.keys = {"sqlite": self.sqlite.api_key(RETAILER),
                     "pg": self.replicas[0].api_key(RETAILER)}

    def target(self, side: str) -> str:
        if side == "sqlite":
            return self.sqlite.target
        return "ipv4:" + ",".join(gw.target for gw in self.replicas[:int(side[2:])])

    def key(self, side: str) -> str:
        return self.keys["sqlite" if side == "sqlite" else "pg"]

    def stop(self) -> None:
        for gw in [self.sqlite, *self.replicas]:
            gw.stop()


def _warm(fleet: _Fleet, grid: pd.DataFrame) -> None:
    """Every gateway forecasts every cell once, so its served-forecast recorder writes them
    now and the windows measure the steady state (cells served again cost a lookup)."""
    from forecast_client import ForecastClient

    for gw in (fleet.sqlite, *fleet.replicas):
        key = fleet.keys["sqlite" if gw is fleet.sqlite else "pg"]
        with ForecastClient(target=gw.target, api_key=key) as client:
            client.predict_frame(RETAILER, grid)
    time.sleep(1.0)  # the recorders write


def _grpc_set_live(target: str, key: str, versions: list[str]) -> float:
    from forecast_client import ForecastClient

    with ForecastClient(target=target, api_key=key) as client:
        for v in (versions[1], versions[0]):  # both loaded and verified before the timing
            client.set_live_model(RETAILER, v)
        per_s = rate(lambda _, i: client.set_live_model(RETAILER, versions[(i + 1) % 2]), 1,
                     3.0)["per_s"]
        client.set_live_model(RETAILER, versions[0])
    return per_s


# -- 3. A live switch's reach ------------------------------------------------------------------


def _switches(fleet: _Fleet, row: tuple[str, int, str], seed: int = 19) -> dict:
    """SWITCHES + 1 switches on replica A; how long each took to reach B and C (ms)."""
    import grpc
    from forecast_client import ForecastClient, pb, pb_grpc
    from forecast_client.rows import make_batch
    from forecast_gateway.config import GatewayConfig

    poll_s = GatewayConfig().fleet_poll_s
    key = fleet.keys["pg"]
    meta = (("authorization", f"Bearer {key}"),)
    request = pb.PredictRequest(retailer=RETAILER, rows=make_batch([row[0]], [row[1]], [row[2]]))
    channels = [grpc.insecure_channel(gw.target) for gw in fleet.replicas[1:]]
    stubs = [pb_grpc.ForecastServiceStub(c) for c in channels]
    rng = random.Random(seed)
    set_live_ms, reach_ms = [], []
    try:
        with ForecastClient(target=fleet.replicas[0].target, api_key=key) as a:
            for i in range(SWITCHES + 1):
                version = fleet.versions[(i + 1) % 2]
                time.sleep(rng.uniform(0, poll_s))  # any phase of the replicas' polls
                t0 = time.perf_counter()
                a.set_live_model(RETAILER, version)
                t1 = time.perf_counter()
                reached: list[float | None] = [None] * len(stubs)
                while None in reached:
                    for j, stub in enumerate(stubs):
                        if reached[j] is None and stub.Predict(
                                request, metadata=meta, timeout=10).model_version == version:
                            reached[j] = round((time.perf_counter() - t1) * 1e3, 1)
                    if time.perf_counter() - t1 > 30:
                        raise RuntimeError(f"switch {i} to {version} not seen within 30 s")
                    time.sleep(POLL_MS / 1e3)
                set_live_ms.append(round((t1 - t0) * 1e3, 1))
                reach_ms.append(reached)
            a.set_live_model(RETAILER, fleet.versions[0])
    finally:
        for channel in channels:
            channel.close()
    later = reach_ms[1:]
    out = {"switches": len(later), "poll_s": poll_s, "first_reach_ms": reach_ms[0],
           "first_set_live_ms": set_live_ms[0],
           "set_live_p50_ms": statistics.median(set_live_ms[1:]), "reach_ms": later}
    for j, name in enumerate("bc"):
        values = [r[j] for r in later]
        out[f"{name}_median_ms"], out[f"{name}_max_ms"] = statistics.median(values), max(values)
    out["all_max_ms"] = max(max(r) for r in later)
    return out


# -- 4. What the database holds ----------------------------------------------------------------

def _real_train(fleet: _Fleet) -> dict:
    """One Train through the fleet's round-robin name (the bundled sample, FAST_HP); the rows
    it left in the database."""
    from forecast_client import ClientConfig, ForecastClient
    from forecast_gateway.store import schema
    from forecast_gateway.store.database import Database
    from sqlalchemy import select

    key = fleet.replicas[0].api_key(TRAIN_RETAILER)
    with ForecastClient(ClientConfig(target=fleet.target("pg3"), api_key=key)) as client:
        t0 = time.perf_counter()
        ds = client.upload_dataset(TRAIN_RETAILER, ROOT / "data" / "sample" / "train.csv")
        job = client.train(TRAIN_RETAILER, dataset_id=ds.dataset_id, hyperparameters=FAST_HP)
        done = client.wait_for_job(TRAIN_RETAILER, job.job_id, timeout_s=300)
        seconds = time.perf_counter() - t0
    if not done.model_version:
        raise RuntimeError(f"the fleet's Train failed: {done.failure_reason}")
    db = Database.open(fleet.url)
    try:
        with db.read() as conn:
            def one(table, *where):
                return dict(conn.execute(select(table).where(*where)).mappings().first())
            rows = {"jobs": one(schema.jobs, schema.jobs.c.job_id == job.job_id),
                    "models": one(schema.models, schema.models.c.retailer == TRAIN_RETAILER),
                    "datasets": one(schema.datasets, schema.datasets.c.retailer == TRAIN_RETAILER),
                    "api_keys": one(schema.api_keys, schema.api_keys.c.retailer == TRAIN_RETAILER)}
    finally:
        db.close()
    return {"seconds": round(seconds, 1), "owner": rows["jobs"]["owner"],
            "seq": rows["jobs"]["seq"], "rows": rows}


# -- the run -----------------------------------------------------------------------------------

def run(window_s: float = 5.0, repeats: int = 3) -> dict:
    """Every measurement of the module docstring; a dict of numbers (rates a second, ms)."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))   # last: tests/forecasting must not shadow the library
    from forecast_gateway.store.database import normalise_url
    from postgres_server import PostgresServer
    from sqlalchemy import create_engine, text

    from forecasting.predictor import Predictor

    started = time.perf_counter()
    result: dict = {"window_s": window_s, "repeats": repeats, "client_procs": CLIENT_PROCS,
                    "client_threads": CLIENT_THREADS, "cpus": os.cpu_count()}
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="fleet-bench-pg-"))).start()
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
            root = Path(tmp)
            url = pg.create()
            t0 = time.perf_counter()
            artifact = _train_model(root / "model")
            result["model_train_s"] = round(time.perf_counter() - t0, 1)
            result["artifact_bytes"] = sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file())
            grid = Predictor.load(artifact).future_rows(HORIZON)
            first = grid.iloc[0]
            row = (str(first["date"]), int(first["store_nbr"]), str(first["family"]))
            result.update(series=len(grid) // HORIZON, unary_rows=HORIZON, bulk_rows=len(grid))
            fleet = _Fleet(pg, url, root, artifact)
            engine = create_engine(normalise_url(url))
            db_name = url.rsplit("/", 1)[1]
            try:
                time.sleep(2.0)
                c0 = commits(engine, db_name)
                time.sleep(IDLE_S)
                result["idle_commits_per_s_per_replica"] = round(
                    (commits(engine, db_name) - c0) / IDLE_S / len(fleet.replicas), 1)
                _warm(fleet, grid)
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(CLIENT_PROCS, initializer=init_worker, initargs=(grid,)) as pool:
                    pool.map(time.sleep, [0.1] * CLIENT_PROCS)  # the workers are up
                    stop, seen = threading.Event(), []
                    sampler = threading.Thread(target=connections, args=(url, stop, seen))
                    sampler.start()
                    runs: dict = {(s, k): [] for s in SIDES for k in ("unary", "bulk")}
                    try:
                        for _ in range(repeats):
                            for side in SIDES:
                                for kind in ("unary", "bulk"):
                                    print(f"-- {side} {kind}", flush=True)
                                    runs[side, kind].append(window(fleet, pool, side, kind, window_s))
                        print("-- gRPC ListModels", flush=True)
                        result["grpc_list_models"] = {
                            side: summary([window(fleet, pool, side, "list_models", window_s)])
                            for side in ("sqlite", "pg1", "pg3")}
                    finally:
                        stop.set()
                        sampler.join()
                    result["connections_max"] = max(seen, default=0)
                    result["predict"] = {s: {k: summary(runs[s, k]) for k in ("unary", "bulk")}
                                         for s in SIDES}
                print("-- gRPC SetLiveModel", flush=True)
                result["grpc_set_live_per_s"] = {
                    "sqlite": _grpc_set_live(fleet.sqlite.target, fleet.keys["sqlite"], fleet.versions),
                    "postgresql": _grpc_set_live(fleet.replicas[0].target, fleet.keys["pg"],
                                                 fleet.versions)}
                print("-- live switches A -> B, C", flush=True)
                result["switch"] = _switches(fleet, row)
                print("-- a real Train through the fleet", flush=True)
                real = _real_train(fleet)
                with engine.connect() as conn:
                    result["fleet_db"] = {
                        "bytes": int(conn.execute(text("SELECT pg_database_size(:d)"),
                                                  {"d": db_name}).scalar()),
                        "served_rows": int(conn.execute(text("SELECT count(*) FROM served")).scalar())}
            finally:
                engine.dispose()
                fleet.stop()
            result["train"] = {k: v for k, v in real.items() if k != "rows"}
            updates = max(1, real["seq"] - 2)   # less the claim and add_model's last update
            result["train_records_updates"] = updates
            records = {"metrics": json.loads(real["rows"]["jobs"]["metrics"]),
                       "manifest": json.loads(real["rows"]["models"]["manifest"] or "{}")}
            print("-- Registry operations", flush=True)
            result["registry"] = {
                "sqlite": registry_ops(f"sqlite:///{root / 'ops.sqlite3'}", root, updates, records),
                "postgresql": registry_ops(pg.create(), root, updates, records,
                                            lambda: postgres_pids(pg))}
            print("-- sizes", flush=True)
            result["sizes"] = sizes(pg.create(), root / "sizes.sqlite3", real["rows"])
    finally:
        pg.stop()
    result["seconds"] = round(time.perf_counter() - started)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window", type=float, default=5.0, help="seconds of each load window")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the sides")
    p.add_argument("--output", default=str(ROOT / ".bench" / "fleet.json"))
    a = p.parse_args(argv)
    result = run(a.window, a.repeats)
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2, default=str))
    print(markdown(result))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
