"""The fleet benchmark's load (`bench/fleet_bench.py`): CPU seconds of processes, the client
workers (spawned processes, each with threads of its own `ForecastClient`), one load window and
its summary, and the database samplers."""

from __future__ import annotations

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

RETAILER = "bench"
HORIZON = 16
CLIENT_PROCS, CLIENT_THREADS = 4, 2


# -- CPU of processes --------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of `pids` so far (those still running)."""
    out = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


class CpuMeter:
    """CPU seconds that a changing set of processes (`pids()`, e.g. PostgreSQL's backends,
    which connection pools open as they grow) used between `__init__` and `seconds()`: a
    process started meanwhile counts from zero."""

    def __init__(self, pids):
        self._pids = pids
        self._start = _cpu_by_pid(pids())

    def seconds(self) -> float:
        end = _cpu_by_pid(self._pids())
        return sum(v - self._start.get(pid, 0.0) for pid, v in end.items())


def _machine() -> tuple[float, float, float]:
    """The whole machine's busy, steal and total CPU seconds so far (/proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, steal, total = ticks[3] + ticks[4], ticks[7], sum(ticks[:8])
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle - steal) / hz, steal / hz, total / hz


def postgres_pids(pg) -> list[int]:
    """The postmaster and its children (the backends of every connection)."""
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and (_stat(int(p)) or ["", "0"])[1] == str(master)]
    return [master, *children]


# -- the client workers (spawned processes) ----------------------------------------------------

_GRID: pd.DataFrame | None = None


def init_worker(grid: pd.DataFrame) -> None:
    """Keep the rows (nothing here may fail: a pool restarts a worker whose initializer
    raises, for ever)."""
    global _GRID
    _GRID = grid


def _unary_rows() -> list[dict]:
    """One unary request's columns per series (every series' 16 days)."""
    return [{"date": g["date"].astype(str).tolist(), "store_nbr": g["store_nbr"].tolist(),
             "family": g["family"].astype(str).tolist(), "onpromotion": g["onpromotion"].tolist()}
            for _, g in _GRID.groupby(["store_nbr", "family"], sort=True)]


def _load(task: dict) -> dict:
    """One worker's share of a load window: `task["threads"]` threads calling `task["kind"]` on
    `task["target"]` from `start_at` to `end_at` (epoch seconds)."""
    from forecast_client import ClientConfig, ForecastClient, Timeouts

    kind, seed = task["kind"], task["seed"]
    one = _unary_rows() if kind == "unary" else []
    config = ClientConfig(target=task["target"], api_key=task["key"],
                          timeouts=Timeouts(predict_s=60, stream_s=120, unary_s=60))
    threads = task["threads"]
    clients = [ForecastClient(config) for _ in range(threads)]

    def call(client: ForecastClient, i: int) -> int:
        if kind == "unary":
            client.predict(RETAILER, **one[i % len(one)])
            return HORIZON
        if kind == "bulk":
            return len(client.predict_frame(RETAILER, _GRID))
        client.list_models(RETAILER)
        return 1

    for client in clients:  # connect to every address of the name before the window opens
        for i in range(task["replicas"]):
            call(client, seed + i)
    late = time.time() - task["start_at"]
    time.sleep(max(0.0, -late))
    cpu0 = time.process_time()

    def loop(t: int) -> tuple[list[float], int, int, str]:
        latencies, rows, errors, first_error = [], 0, 0, ""
        i = seed * 997 + t * 131
        while time.time() < task["end_at"]:
            t0 = time.perf_counter()
            try:
                n = call(clients[t], i)
            except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
                errors += 1
                first_error = first_error or repr(exc)[:300]
                continue
            finally:
                i += 1
            if time.time() <= task["end_at"]:
                latencies.append(time.perf_counter() - t0)
                rows += n
        return latencies, rows, errors, first_error

    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(loop, range(threads)))
    cpu = time.process_time() - cpu0
    for client in clients:
        client.close()
    return {"latencies": [x for d in done for x in d[0]], "rows": sum(d[1] for d in done),
            "errors": sum(d[2] for d in done), "first_error": next((d[3] for d in done if d[3]), ""),
            "late_s": late, "cpu_s": cpu}


# -- the database, sampled --------------------------------------------------------------------

def connections(url: str, stop: threading.Event, seen: list[int]) -> None:
    """Sample the gateways' connections to the fleet database until `stop`; the maximum."""
    from forecast_gateway.store.database import normalise_url
    from sqlalchemy import create_engine, text

    engine = create_engine(normalise_url(url), poolclass=None)
    name = url.rsplit("/", 1)[1]
    with engine.connect() as conn:
        while not stop.wait(0.2):
            seen.append(int(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND "
                "application_name = 'forecast-gateway'"), {"d": name}).scalar()))
            conn.commit()
    engine.dispose()


def commits(engine, name: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return int(conn.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = :d"),
                                {"d": name}).scalar())


# -- 1. Predict --------------------------------------------------------------------------------

def window(fleet, pool, side: str, kind: str, seconds: float,
            threads: int = CLIENT_THREADS) -> dict:
    """One load window on `side`; rates, latencies and the CPU each party used."""
    replicas = 1 if side == "sqlite" else int(side[2:])
    start_at = time.time() + 1.5
    tasks = [{"kind": kind, "target": fleet.target(side), "key": fleet.key(side), "seed": i,
              "replicas": replicas, "start_at": start_at, "end_at": start_at + seconds,
              "threads": threads} for i in range(CLIENT_PROCS)]
    gateways = [fleet.sqlite.proc.pid] if side == "sqlite" else [
        gw.proc.pid for gw in fleet.replicas]
    pending = pool.map_async(_load, tasks, chunksize=1)
    time.sleep(max(0.0, start_at - time.time()))
    gateway_cpu = CpuMeter(lambda: gateways)
    pg_cpu = CpuMeter(lambda: postgres_pids(fleet.pg))
    machine = _machine()
    time.sleep(seconds)
    cpu = (gateway_cpu.seconds(), pg_cpu.seconds())
    machine = [b - a for a, b in zip(machine, _machine(), strict=True)]
    parts = pending.get(timeout=seconds + 180)
    if max(p["late_s"] for p in parts) > 0.5:
        raise RuntimeError(f"a client worker started {max(p['late_s'] for p in parts):.1f} s late")
    latencies = np.asarray([x for p in parts for x in p["latencies"]]) * 1e3
    return {"rows_per_s": sum(p["rows"] for p in parts) / seconds,
            "calls_per_s": len(latencies) / seconds, "latencies_ms": latencies.tolist(),
            "errors": sum(p["errors"] for p in parts),
            "first_error": next((p["first_error"] for p in parts if p["first_error"]), ""),
            "cpu_gateways": cpu[0] / seconds, "cpu_postgres": cpu[1] / seconds,
            "cpu_clients": sum(p["cpu_s"] for p in parts) / seconds,
            "cpu_machine": machine[0] / seconds, "cpu_steal": machine[1] / seconds}


def summary(runs: list[dict]) -> dict:
    lat = np.concatenate([np.asarray(r["latencies_ms"]) for r in runs])
    med = lambda k: round(statistics.median(r[k] for r in runs), 3)
    return {"rows_per_s": round(statistics.median(r["rows_per_s"] for r in runs)),
            "runs_rows_per_s": [round(r["rows_per_s"]) for r in runs],
            "calls_per_s": med("calls_per_s"), "calls": len(lat),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": sum(r["errors"] for r in runs),
            "first_error": next((r["first_error"] for r in runs if r["first_error"]), ""),
            "cpu_gateways": med("cpu_gateways"), "cpu_postgres": med("cpu_postgres"),
            "cpu_clients": med("cpu_clients"), "cpu_machine": med("cpu_machine"),
            "cpu_steal": med("cpu_steal")}
