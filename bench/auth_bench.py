"""What authentication costs a call: the credential check alone, and a whole RPC with auth on
against the same RPC with auth off.

1. In process: `Authenticator.authenticate` on a cached key (the hot path: a SHA-256 of the
   key and a dict lookup) and on a cold one (cache off: the key store's indexed SELECT and the
   HMAC-SHA256 check), in microseconds per call.
2. End to end: ListModels (the cheapest RPC, so the check is the largest share of it) against
   two gateway processes on loopback, one with auth (the default) and one with --no-auth,
   calls interleaved (alternating which side goes first), p50 and p99 of each and their ratio.

    python -m bench.auth_bench
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

IN_PROCESS_CALLS = 20_000
RPC_CALLS = 2_000
RETAILER = "bench"


def _per_call_us(fn, calls: int) -> float:
    fn()  # warm up (fills the cache on the hot path)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def _in_process(data_dir: Path) -> dict:
    from forecast_gateway.auth.authenticator import Authenticator
    from forecast_gateway.auth.keys import KeyStore
    from forecast_gateway.auth.principal import Role
    from forecast_gateway.store.database import Database, default_url

    database = Database.open(default_url(data_dir))
    store = KeyStore(database)
    try:
        key = store.issue(Role.ADMIN, None, "bench").key
        metadata = (("authorization", f"Bearer {key}"),)
        hot, cold = Authenticator(store, cache_s=3600), Authenticator(store, cache_s=0)
        return {"check_cached_us": round(_per_call_us(
                    lambda: hot.authenticate(metadata, None), IN_PROCESS_CALLS), 2),
                "check_uncached_us": round(_per_call_us(
                    lambda: cold.authenticate(metadata, None), IN_PROCESS_CALLS // 10), 2)}
    finally:
        database.close()


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _end_to_end(workdir: Path) -> dict:
    from forecast_client import ClientConfig, ForecastClient
    from forecast_gateway.testing.process import GatewayProcess

    quiet = {"FORECAST_GATEWAY_LOG_LEVEL": "WARNING"}
    on = GatewayProcess(workdir / "auth-on", quiet)
    key = on.api_key(RETAILER)
    off = GatewayProcess(workdir / "auth-off", quiet, args=("--no-auth",))
    off.api_key(RETAILER)  # creates the retailer there too, so both answer the same list
    with on, off, ForecastClient(ClientConfig(target=on.target, api_key=key)) as with_auth, \
            ForecastClient(ClientConfig(target=off.target, api_key=None)) as without:
        times: dict[str, list[float]] = {"on": [], "off": []}
        clients = {"on": with_auth, "off": without}
        for client in clients.values():
            for _ in range(50):  # warm up (connections, caches)
                client.list_models(RETAILER)
        for i in range(RPC_CALLS):
            order = list(clients.items())
            for side, client in order if i % 2 else order[::-1]:  # neither side always first
                t0 = time.perf_counter()
                client.list_models(RETAILER)
                times[side].append((time.perf_counter() - t0) * 1e3)
    result = {"rpc_calls": RPC_CALLS}
    for side, values in times.items():
        result[f"list_models_{side}_p50_ms"] = round(statistics.median(values), 3)
        result[f"list_models_{side}_p99_ms"] = round(_percentile(values, 99), 3)
    result["p50_ratio"] = round(result["list_models_on_p50_ms"] / result["list_models_off_p50_ms"], 3)
    return result


def run() -> dict:
    """Both measurements, as a flat dict."""
    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        return {**_in_process(Path(tmp) / "keys"), **_end_to_end(Path(tmp))}


def markdown(r: dict) -> str:
    """The benchmarks.md section."""
    return "\n".join([
        "| measure | auth on | auth off | ratio |", "| --- | ---: | ---: | ---: |",
        (f"| ListModels p50 over loopback, {r['rpc_calls']:,} calls each, interleaved (ms) | "
         f"{r['list_models_on_p50_ms']:.3f} | {r['list_models_off_p50_ms']:.3f} | "
         f"{r['p50_ratio']:.2f} |"),
        (f"| ListModels p99 (ms) | {r['list_models_on_p99_ms']:.3f} | "
         f"{r['list_models_off_p99_ms']:.3f} | "
         f"{r['list_models_on_p99_ms'] / r['list_models_off_p99_ms']:.2f} |"),
        "",
        (f"The credential check alone, in process: {r['check_cached_us']:.1f} µs per call with "
         f"the key cached (every call after the first within `--auth-cache-s`), "
         f"{r['check_uncached_us']:.1f} µs uncached (SQLite lookup by key id + HMAC-SHA256)."),
    ])


if __name__ == "__main__":
    result = run()
    print(markdown(result))
