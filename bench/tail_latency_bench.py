"""Unary tail latency under bulk load, saying what it measures: loopback only, bounded.

What one run measures, per placement of the processes:

1. idle: UNARY_CALLS unary Predict calls of one series x 16 days (a small, fast call), one
   after another, from this process (the unary client), against a gateway doing nothing else;
2. busy: the same calls while BULK_STREAMS PredictStream calls keep sending CHUNK_ROWS-row
   chunks as fast as the gateway takes them. The streams come from a load generator in its own
   process (``--load``: generic channel methods, pre-serialized requests, answers not decoded),
   so its threads never wait for this process's interpreter lock, or the unary client for its;
3. CPU, over the busy window: seconds of CPU a wall second used by the gateway, the load
   generator and the unary client, so a reader sees whether the clients shared the cores the
   gateway served from.

Placements: ``in_process`` (the bulk streams as threads of the unary client's own process, as
``fairness_bench`` runs them: the unary client then waits for its own interpreter lock behind
32 stream threads), ``shared`` (the load generator in its own process, nothing pinned: the
clients share both cores with the gateway) and ``pinned`` (``taskset``: the load generator
alone on the last CPU, the gateway and the unary client on the others; on 2 cores the gateway
then has one). In ``in_process`` the load generator's CPU is counted in the unary client's.
The busy / idle p99 ratio is read within a placement. Bulk rows/s are the load generator's
answered chunks over its busy window.

    python -m bench.tail_latency_bench [--model-dir DIR] [--placements shared,pinned]

`run(model_dir)` is what `bench.run_all` calls. Without --model-dir the stand-alone run trains
``fairness_bench.train_model``'s model.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RETAILER = "bench"
BULK_STREAMS = 32
UNARY_CALLS = 200
BUSY_LIMIT_S = 120.0
PLACEMENTS = ("in_process", "shared", "pinned")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pin(pid: int, cpus: str) -> None:
    """Every thread of ``pid`` (and the threads they start) on ``cpus``, by ``taskset``."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def load_main(target: str, chunks_file: str, streams: int) -> int:
    """The load generator (``--load``): ``streams`` bulk streams until stdin closes; prints
    "ready" once every stream has had an answer, then one JSON line (chunks answered, seconds
    from ready to the end, its own CPU seconds over them)."""
    from bench.fairness_bench import _bulk

    chunks = pickle.loads(Path(chunks_file).read_bytes())
    stop, started, answered = threading.Event(), threading.Barrier(streams + 1), [0]
    threads = [threading.Thread(target=_bulk, args=(target, chunks, stop, started, answered),
                                daemon=True) for _ in range(streams)]
    for t in threads:
        t.start()
    started.wait(BUSY_LIMIT_S)
    t0, cpu0, done0 = time.perf_counter(), _own_cpu_seconds(), answered[0]
    print("ready", flush=True)
    sys.stdin.readline()                     # the parent's busy window is over
    seconds, cpu = time.perf_counter() - t0, _own_cpu_seconds() - cpu0
    done = answered[0] - done0
    stop.set()
    for t in threads:
        t.join(30)
    print(json.dumps({"chunks": done, "seconds": seconds, "cpu_s": cpu}), flush=True)
    return 0


class _InProcessLoad:
    """The load generator's streams as threads of this process (placement ``in_process``)."""

    def __init__(self, target: str, chunks_file: Path):
        from bench.fairness_bench import _bulk

        chunks = pickle.loads(chunks_file.read_bytes())
        self.stop, self.answered = threading.Event(), [0]
        started = threading.Barrier(BULK_STREAMS + 1)
        self.threads = [threading.Thread(target=_bulk, daemon=True, args=(
            target, chunks, self.stop, started, self.answered)) for _ in range(BULK_STREAMS)]
        for t in self.threads:
            t.start()
        started.wait(BUSY_LIMIT_S)
        self.t0, self.done0 = time.perf_counter(), self.answered[0]

    def finish(self) -> dict:
        report = {"chunks": self.answered[0] - self.done0,
                  "seconds": time.perf_counter() - self.t0, "cpu_s": 0.0}
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return report


def _placement(gw, unary: bytes, chunks_file: Path, chunk_rows: int, placement: str) -> dict:
    from bench.fairness_bench import _unary_latencies

    if placement == "in_process":
        _unary_latencies(gw.target, unary, 20, time.monotonic() + 60)   # warm up
        idle = _unary_latencies(gw.target, unary, UNARY_CALLS, time.monotonic() + BUSY_LIMIT_S)
        load = _InProcessLoad(gw.target, chunks_file)
        t0, gw0, own0 = time.perf_counter(), _cpu_seconds(gw.proc.pid), _own_cpu_seconds()
        busy = _unary_latencies(gw.target, unary, UNARY_CALLS, time.monotonic() + BUSY_LIMIT_S)
        wall = time.perf_counter() - t0
        gateway_cpu, unary_cpu = _cpu_seconds(gw.proc.pid) - gw0, _own_cpu_seconds() - own0
        return _result(placement, "bulk streams as threads of the unary client", idle, busy,
                       load.finish(), chunk_rows, gateway_cpu / wall, unary_cpu / wall)
    pinned = placement == "pinned"

    last = os.cpu_count() - 1 if (os.cpu_count() or 1) > 1 else 0
    rest = f"0-{last - 1}" if last > 1 else "0"
    if pinned:
        _pin(gw.proc.pid, rest)
        _pin(os.getpid(), rest)
    try:
        _unary_latencies(gw.target, unary, 20, time.monotonic() + 60)   # warm up
        idle = _unary_latencies(gw.target, unary, UNARY_CALLS, time.monotonic() + BUSY_LIMIT_S)
        command = [sys.executable, "-m", "bench.tail_latency_bench", "--load", gw.target,
                   "--chunks-file", str(chunks_file)]
        if pinned:
            command = ["taskset", "-c", str(last), *command]
        load = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep
                                                          .join(sys.path)})
        try:
            if load.stdout.readline().strip() != "ready":
                raise RuntimeError("the load generator did not start its streams")
            t0, gw0, own0 = time.perf_counter(), _cpu_seconds(gw.proc.pid), _own_cpu_seconds()
            busy = _unary_latencies(gw.target, unary, UNARY_CALLS,
                                    time.monotonic() + BUSY_LIMIT_S)
            wall = time.perf_counter() - t0
            gateway_cpu, unary_cpu = _cpu_seconds(gw.proc.pid) - gw0, _own_cpu_seconds() - own0
            load.stdin.write("\n")
            load.stdin.flush()
            report = json.loads(load.stdout.readline())
        finally:
            load.stdin.close()
            try:
                load.wait(60)
            except subprocess.TimeoutExpired:
                load.kill()
    finally:
        if pinned:
            everything = f"0-{last}"
            _pin(gw.proc.pid, everything)
            _pin(os.getpid(), everything)
    return _result(placement, (f"load generator on CPU {last}, gateway and unary client on "
                               f"{rest}" if pinned else "none"), idle, busy, report, chunk_rows,
                   gateway_cpu / wall, unary_cpu / wall)


def _result(placement: str, pinning: str, idle: list[float], busy: list[float], load: dict,
            chunk_rows: int, gateway_cpu: float, unary_cpu: float) -> dict:
    from bench.fairness_bench import _p

    return {
        "placement": placement, "pinning": pinning, "busy_calls_answered": len(busy),
        "idle_p50_ms": round(_p(idle, 50), 2), "idle_p99_ms": round(_p(idle, 99), 2),
        "busy_p50_ms": round(_p(busy, 50), 2), "busy_p99_ms": round(_p(busy, 99), 2),
        "busy_to_idle_p99": round(_p(busy, 99) / _p(idle, 99), 2),
        "bulk_rows_per_s": round(load["chunks"] * chunk_rows / load["seconds"]),
        "gateway_cpu_per_s": round(gateway_cpu, 2),
        "load_generator_cpu_per_s": round(load["cpu_s"] / load["seconds"], 2),
        "unary_client_cpu_per_s": round(unary_cpu, 2), "cpus": os.cpu_count(),
    }


def run(model_dir: str, placements: tuple[str, ...] = PLACEMENTS,
        gateway_env: dict[str, str] | None = None) -> dict:
    """Idle and busy unary latency for each placement, against one gateway serving
    ``model_dir`` (``gateway_env``: extra FORECAST_GATEWAY_* settings)."""
    from forecast_client import pb
    from forecast_client.rows import make_batch
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant
    from forecast_gateway.testing.process import GatewayProcess

    from bench.fairness_bench import CHUNK_ROWS, _chunk_bytes
    from forecasting.forecast import future_rows
    from forecasting.predictor import Predictor

    predictor = Predictor.load(model_dir)
    one = future_rows(predictor.series.iloc[:1], 16, predictor.last_date)
    unary = pb.PredictRequest(retailer=RETAILER, rows=make_batch(
        one["date"], one["store_nbr"].to_numpy(), one["family"],
        one["onpromotion"].to_numpy())).SerializeToString()
    out: dict = {"bulk_streams": BULK_STREAMS, "chunk_rows": CHUNK_ROWS, "unary_rows": len(one),
                 "unary_calls": UNARY_CALLS, "placements": []}
    with tempfile.TemporaryDirectory(prefix="tail-bench-") as tmp:
        chunks_file = Path(tmp) / "chunks.pickle"
        chunks_file.write_bytes(pickle.dumps(_chunk_bytes(predictor, 8)))
        data_dir = Path(tmp) / "data"
        service = ForecastService(GatewayConfig(data_dir=data_dir), LocalBackend(training_slots=1))
        service.models.import_model(Tenant(RETAILER), Path(model_dir))
        service.close()
        env = {"FORECAST_GATEWAY_LOG_LEVEL": "WARNING", "FORECAST_GATEWAY_AUTH": "false",
               **(gateway_env or {})}
        with GatewayProcess(data_dir, env=env, log_path=Path(tmp) / "gateway.log") as gw:
            for placement in placements:
                out["placements"].append(_placement(gw, unary, chunks_file, CHUNK_ROWS,
                                                    placement))
    return out


def markdown(r: dict) -> str:
    """The section of docs/benchmarks.md."""
    lines = [(f"Unary Predict ({r['unary_rows']} rows, {r['unary_calls']} calls a side, one after "
              f"another) idle and with {r['bulk_streams']} PredictStream calls sending "
              f"{r['chunk_rows']:,}-row chunks from a load generator in its own process. CPU: "
              "seconds of CPU per wall second over the busy window. Goal: busy p99 at most "
              "3x idle."), "",
             ("| placement | idle p50 / p99 (ms) | busy p50 / p99 (ms) | busy / idle p99 | bulk "
             "rows/s | CPU/s: gateway, load generator, unary client |"),
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for p in r["placements"]:
        lines.append(
            f"| {p['placement']} ({p['pinning']}) | {p['idle_p50_ms']:.2f} / "
            f"{p['idle_p99_ms']:.2f} | {p['busy_p50_ms']:.2f} / {p['busy_p99_ms']:.2f} | "
            f"**{p['busy_to_idle_p99']:.2f}** | {p['bulk_rows_per_s']:,} | "
            f"{p['gateway_cpu_per_s']:.2f}, {p['load_generator_cpu_per_s']:.2f}, "
            f"{p['unary_client_cpu_per_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a model artifact (default: fairness_bench's)")
    parser.add_argument("--placements", default=",".join(PLACEMENTS),
                        help="in_process, shared, pinned (comma-separated)")
    parser.add_argument("--load", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--chunks-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        return load_main(args.load, args.chunks_file, BULK_STREAMS)
    from bench.fairness_bench import train_model

    placements = tuple(p for p in args.placements.split(",") if p)
    unknown = set(placements) - set(PLACEMENTS)
    if unknown:
        parser.error(f"unknown placement(s) {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="tail-bench-model-") as tmp:
        model_dir = args.model_dir or train_model(Path(tmp) / "model")
        result = run(model_dir, placements)
    print(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]
    sys.exit(main())
