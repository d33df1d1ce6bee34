"""The fleet benchmark's store side (`bench/fleet_bench.py`): registry operations a second
through the `Registry` class on each engine, and the bytes a row each engine keeps when filled
as 1,000 retailers would fill it."""

from __future__ import annotations

import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.fleet_load import HORIZON, CpuMeter

FAST_HP = {"num_round": "30", "early_stopping_rounds": "5"}  # as tests/conftest.py
OP_S = 2.0
LIST_MODELS_VERSIONS = 20
SIZE_RETAILERS, SIZE_JOBS, SIZE_SERVED = 1000, 5000, 200_000


# -- 2. Registry operations --------------------------------------------------------------------

def rate(op, threads: int, seconds: float = OP_S, pg_pids=list) -> dict:
    """Operations a second of `op(thread_index, i)` from `threads` threads, and the CPU ms an
    operation cost this process and PostgreSQL (`pg_pids()`: its processes)."""
    end = time.perf_counter() + seconds

    def loop(t: int) -> int:
        n = 0
        while time.perf_counter() < end:
            op(t, n)
            n += 1
        return n

    t0, cpu0, pg_cpu = time.perf_counter(), time.process_time(), CpuMeter(pg_pids)
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(loop, range(threads)))
    elapsed = time.perf_counter() - t0
    return {"per_s": round(total / elapsed, 1),
            "caller_cpu_ms": round((time.process_time() - cpu0) / total * 1e3, 3),
            "postgres_cpu_ms": round(pg_cpu.seconds() / total * 1e3, 3)}


def registry_ops(url: str, root: Path, updates: int, real: dict, pg_pids=list) -> dict:
    """ListModels, a Train's records and a live switch through `Registry` on `url`."""
    from forecast_gateway.domain import Job, JobState, ModelVersion
    from forecast_gateway.store.database import Database
    from forecast_gateway.store.registry import Registry

    reg = Registry(Database.open(url), root)
    retailers = [f"ops-{t}" for t in range(4)]

    def model(retailer: str, number: int, job_id: str = "") -> ModelVersion:
        return ModelVersion(retailer=retailer, version=f"v{number}", path=root / retailer / f"v{number}",
                            job_id=job_id or f"job-{number}", dataset_id="ds-1", model_kind="xgboost",
                            final_model="xgboost", data_start="2015-06-01", data_end="2017-08-15",
                            horizon=HORIZON, created_at=time.time(), manifest=real["manifest"])

    try:
        for retailer in retailers:
            reg.ensure_retailer(retailer)
            for n in range(1, LIST_MODELS_VERSIONS + 1):
                reg.add_model(model(retailer, n), n, make_live=(n == 1))

        def train_records(t: int, _: int) -> None:
            retailer = retailers[t]
            job = Job(job_id=f"job-{uuid.uuid4().hex[:12]}", retailer=retailer, dataset_id="ds-1",
                      model_kind="xgboost", hyperparameters=dict(FAST_HP), horizon=HORIZON,
                      state=JobState.QUEUED, created_at=time.time())
            reg.add_job(job)
            reg.claim_job(f"gw-{t}", 15.0)
            reg.update_job(job.job_id, state=JobState.RUNNING, started_at=time.time())
            for k in range(max(0, updates - 1)):
                reg.update_job(job.job_id, stage="fit", progress=k / max(1, updates))
            with reg.db.lock(f"publish:{retailer}"):
                number = reg.next_model_number(retailer)
                reg.add_model(model(retailer, number, job.job_id), number, make_live=True,
                              job_update={"state": JobState.SUCCEEDED, "ended_at": time.time(),
                                          "model_version": f"v{number}", "metrics": real["metrics"]})

        ops = {"list_models": lambda t, _: reg.list_models(retailers[t]),
               "train_records": train_records,
               "set_live": lambda t, i: reg.set_live(retailers[t], f"v{1 + i % 2}")}
        return {op: {str(threads): rate(fn, threads, pg_pids=pg_pids) for threads in (1, 4)}
                for op, fn in ops.items()}
    finally:
        reg.db.close()


# -- what the database holds ---------------------------------------------------------------

def _fill(url: str, real: dict) -> dict[str, int]:
    """SIZE_RETAILERS retailers with SIZE_JOBS copies of the real Train's rows and SIZE_SERVED
    served forecasts, in a fresh database at `url`; rows per table."""
    from forecast_gateway.store import schema
    from forecast_gateway.store.database import Database

    now = time.time()
    names = [f"retailer-{i:04d}" for i in range(SIZE_RETAILERS)]
    families = [f"FAMILY {i:02d} {'X' * (i % 9)}" for i in range(33)]
    tables: dict[str, list[dict]] = {
        "retailers": [{"retailer": n, "created_at": now, "live_version": "v5"} for n in names],
        "api_keys": [{**real["api_keys"], "key_id": f"k{i:011x}", "retailer": n}
                     for i, n in enumerate(names)]}
    for table, key in (("jobs", "job_id"), ("datasets", "dataset_id")):
        tables[table] = [{**real[table], key: f"{key[:3]}-{i:012x}", "retailer": names[i % SIZE_RETAILERS],
                          **({"request_id": uuid.uuid4().hex} if table == "jobs" else {})}
                         for i in range(SIZE_JOBS)]
    tables["models"] = [{**real["models"], "retailer": names[i % SIZE_RETAILERS],
                         "version": f"v{i // SIZE_RETAILERS + 1}", "number": i // SIZE_RETAILERS + 1,
                         "job_id": f"job-{i:012x}"} for i in range(SIZE_JOBS)]
    per_version = SIZE_SERVED // 50          # 10 retailers x 5 versions
    tables["served"] = [{"retailer": names[i // (5 * per_version)], "version": f"v{i // per_version % 5 + 1}",
                         "store_nbr": j // (33 * HORIZON), "family": families[j // HORIZON % 33],
                         "day": 17_400 + j % HORIZON, "step": j % HORIZON + 1,
                         "forecast": 12.345 + j, "naive": 11.0 + j}
                        for i in range(SIZE_SERVED) for j in [i % per_version]]
    rng = random.Random(7)   # live scores: n and 10 metrics (model and naive) per row
    scores = lambda: json.dumps({"n": rng.randrange(16_000), **{
        f"{p}{m}": rng.random() * 20 for p in ("", "naive_")
        for m in ("rmse", "rmsle", "mae", "wape", "bias")}})
    for table, key, keys in (("live_scores", "step", range(HORIZON + 1)),
                             ("live_daily", "day", range(17_400, 17_580))):
        tables[table] = [{"retailer": n, "version": f"v{v}", key: k, "scores": scores()}
                         for n in names[:10] for v in range(1, 6) for k in keys]
    db = Database.open(url)
    try:
        for name, rows in tables.items():
            for k in range(0, len(rows), 5000):
                with db.write() as conn:
                    conn.execute(schema.metadata.tables[name].insert(), rows[k:k + 5000])
    finally:
        db.close()
    return {name: len(rows) for name, rows in tables.items()}


def sizes(pg_url: str, sqlite_path: Path, real: dict) -> dict:
    """Bytes a row of each filled table, on PostgreSQL (table + indexes + TOAST) and SQLite
    (its b-trees' pages, from dbstat when the build has it)."""
    import sqlite3

    from forecast_gateway.store.database import normalise_url
    from sqlalchemy import create_engine, text

    counts = _fill(pg_url, real)
    _fill(f"sqlite:///{sqlite_path}", real)
    out: dict[str, dict] = {name: {"rows": n} for name, n in counts.items()}
    engine = create_engine(normalise_url(pg_url))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        for name in counts:
            total = int(conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": name}).scalar())
            out[name]["pg_bytes_per_row"] = round(total / counts[name], 1)
        out["pg_database_bytes"] = int(conn.execute(text(
            "SELECT pg_database_size(current_database())")).scalar())
    engine.dispose()
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            pages = dict(conn.execute(
                "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m "
                "ON m.name = d.name GROUP BY m.tbl_name").fetchall())
        except sqlite3.OperationalError:   # a build without SQLITE_ENABLE_DBSTAT_VTAB
            pages = {}
    for name in counts:
        if name in pages:
            out[name]["sqlite_bytes_per_row"] = round(pages[name] / counts[name], 1)
    out["sqlite_file_bytes"] = sqlite_path.stat().st_size
    return out
