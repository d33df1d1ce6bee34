"""What a version in shadow costs the live path, against the same gateway without one.

One gateway process (local backend) serves two retailers trained on the same synthetic data
with the same settings: `plain` (a live model only) and `shadowed` (the same live model plus a
second version trained under promote=shadow). Requests alternate between them in one run, so
both sides see the same machine at the same moment:

- unary Predict, one series x 16 days per call, every series once (each call's cells are new, so
  the shadow forecasts every one of them): p50 and p99 latency per side;
- bulk PredictStream of `--days` days after the first 16, in `PAIRS` back-to-back pairs (their
  order alternating), each pair on its own group of series (new cells: the shadow forecasts
  every chunk it can queue), then the same pairs again (cells recorded unless their batch was
  dropped: the shadow skips them): rows/s per side, the ratio being the median of the pairs'
  ratios (their range beside it).

The shadow's counters (rows it forecast, batches its full queue dropped) come from the gateway's
Prometheus endpoint, so the numbers say how much shadow work ran beside the live path.

    python -m bench.shadow_bench [--stores 24] [--days 32] [--max-series 0]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

HP = {"num_round": "30", "early_stopping_rounds": "5", "refit": "false"}
SHADOW_HP = {**HP, "num_round": "20", "max_depth": "4"}
CHUNK_ROWS = 5_000
PAIRS = 6


def _train(client, retailer: str, dataset: str, hp: dict, promote: str) -> str:
    job = client.train(retailer, dataset_id=dataset, hyperparameters=hp, promote=promote)
    done = client.wait_for_job(retailer, job.job_id, timeout_s=900)
    if done.model_version == "" or done.failure_reason:
        raise RuntimeError(f"training failed: {done.failure_reason}")
    return done.model_version


def _counter(url: str, name: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text,
                                                       re.MULTILINE))


def _stream(client, retailer: str, cells: pd.DataFrame) -> float:
    from forecast_client.rows import make_batch

    batches = [make_batch(c["date"], c["store_nbr"], c["family"])
               for c in (cells.iloc[i:i + CHUNK_ROWS] for i in range(0, len(cells), CHUNK_ROWS))]
    t0 = time.perf_counter()
    n = sum(len(f) for _, f, _ in client.predict_batches(retailer, batches))
    return n / (time.perf_counter() - t0)


def run(stores: int, days: int, max_series: int) -> dict:
    """Measure; returns a flat dict (latencies in ms, rates in rows/s)."""
    from forecast_client import ForecastClient
    from forecast_gateway.testing.process import GatewayProcess

    from forecasting import synthetic

    frame = synthetic.generate(n_stores=stores, start="2016-03-01", end="2017-08-15", seed=5)
    frame["date"] = pd.to_datetime(frame["date"])
    series = frame[["store_nbr", "family"]].drop_duplicates().reset_index(drop=True)
    first = frame["date"].max() + pd.Timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp:
        work = Path(tmp)
        data = work / "history.csv"
        frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(data, index=False)
        with GatewayProcess(work / "data", metrics=True,
                            args=["--monitor-max-series",
                                  str(max_series or len(series))]) as gw:
            url = f"http://127.0.0.1:{gw.metrics_port}"
            clients = {r: ForecastClient(target=gw.target, api_key=gw.api_key(r))
                       for r in ("plain", "shadowed")}
            for retailer, client in clients.items():
                client.wait_until_ready(30)
                dataset = client.upload_dataset(retailer, data).dataset_id
                _train(client, retailer, dataset, HP, "always")
            shadow = _train(clients["shadowed"], "shadowed",
                            clients["shadowed"].list_models("shadowed")[0].dataset_id,
                            SHADOW_HP, "shadow")
            assert [m.version for m in clients["shadowed"].list_models("shadowed")
                    if m.shadow] == [shadow]
            horizon = pd.date_range(first, periods=16)
            latency: dict[str, list[float]] = {r: [] for r in clients}
            for i, s in enumerate(series.itertuples(index=False)):
                order = list(clients) if i % 2 else list(clients)[::-1]
                for retailer in order:
                    t0 = time.perf_counter()
                    clients[retailer].predict(retailer, date=list(horizon),
                                              store_nbr=[s.store_nbr] * 16,
                                              family=[s.family] * 16)
                    latency[retailer].append((time.perf_counter() - t0) * 1000)
            shadow_rows_unary = _counter(url, "forecast_gateway_shadow_rows_predicted_total")
            rates: dict[str, dict[str, list[float]]] = {
                phase: {r: [] for r in clients} for phase in ("new", "repeat")}
            window = pd.DataFrame({"date": pd.date_range(first + pd.Timedelta(days=16),
                                                         periods=days)})
            groups = np.array_split(np.arange(len(series)), PAIRS)
            for k in range(2 * PAIRS):
                phase = "new" if k < PAIRS else "repeat"
                cells = series.iloc[groups[k % PAIRS]].merge(window, how="cross")
                for retailer in (list(clients) if k % 2 else list(clients)[::-1]):
                    rates[phase][retailer].append(_stream(clients[retailer], retailer, cells))
            time.sleep(2)
            shadow_rows = _counter(url, "forecast_gateway_shadow_rows_predicted_total")
            dropped = _counter(url, "forecast_gateway_shadow_batches_dropped_total")
            for client in clients.values():
                client.close()

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2)

    return {
        "series": len(series), "unary_calls_per_side": len(series),
        "sampled_series": min(max_series or len(series), len(series)),
        "plain_p50_ms": pct(latency["plain"], 50), "plain_p99_ms": pct(latency["plain"], 99),
        "shadowed_p50_ms": pct(latency["shadowed"], 50),
        "shadowed_p99_ms": pct(latency["shadowed"], 99),
        "p50_ratio": round(statistics.median(latency["shadowed"]) /
                           statistics.median(latency["plain"]), 3),
        "p99_ratio": round(pct(latency["shadowed"], 99) / pct(latency["plain"], 99), 3),
        "shadow_rows_unary": int(shadow_rows_unary), "bulk_rows": len(cells),
        **{f"bulk_{phase}_{r}": round(statistics.median(rates[phase][r]))
           for phase in rates for r in clients},
        **{f"bulk_{phase}_ratio": round(statistics.median(
            s / p for s, p in zip(rates[phase]["shadowed"], rates[phase]["plain"])), 3)
           for phase in rates},
        **{f"bulk_{phase}_range": [round(min(ratios), 2), round(max(ratios), 2)]
           for phase in rates for ratios in [[s / p for s, p in zip(
               rates[phase]["shadowed"], rates[phase]["plain"])]]},
        "shadow_rows_total": int(shadow_rows), "shadow_batches_dropped": int(dropped),
    }


def markdown(r: dict) -> str:
    """The docs/benchmarks.md section's body."""
    return "\n".join([
        (f"`python -m bench.shadow_bench`: {r['series']:,} series ({r['sampled_series']:,} "
         f"recorded, `--monitor-max-series`); one gateway process, "
         f"retailers `plain` (live model) and `shadowed` (the same live model + a version in "
         f"shadow), requests alternating between them."),
        "",
        "| measure | live only | live + shadow | ratio |",
        "| --- | --- | --- | --- |",
        (f"| Predict p50, 16 rows, {r['unary_calls_per_side']:,} calls (ms) | "
         f"{r['plain_p50_ms']} | {r['shadowed_p50_ms']} | {r['p50_ratio']} |"),
        (f"| Predict p99 (ms) | {r['plain_p99_ms']} | {r['shadowed_p99_ms']} | "
         f"{r['p99_ratio']} |"),
        (f"| PredictStream rows/s, {r['bulk_rows']:,}-row streams of new cells (median of "
         f"{PAIRS} pairs; range) | {r['bulk_new_plain']:,} | {r['bulk_new_shadowed']:,} | "
         f"{r['bulk_new_ratio']} ({r['bulk_new_range'][0]}..{r['bulk_new_range'][1]}) |"),
        (f"| PredictStream rows/s, the same streams again | {r['bulk_repeat_plain']:,} | "
         f"{r['bulk_repeat_shadowed']:,} | {r['bulk_repeat_ratio']} "
         f"({r['bulk_repeat_range'][0]}..{r['bulk_repeat_range'][1]}) |"),
        "",
        (f"The shadow forecast {r['shadow_rows_unary']:,} rows beside the unary calls and "
         f"{r['shadow_rows_total']:,} in all; its full queue dropped "
         f"{r['shadow_batches_dropped']:,} batches."),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=24)
    parser.add_argument("--days", type=int, default=32)
    parser.add_argument("--max-series", type=int, default=0,
                        help="--monitor-max-series of the gateway (0: every series, the worst "
                             "case: the shadow forecasts every new cell)")
    args = parser.parse_args(argv)
    result = run(args.stores, args.days, args.max_series)
    print(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
