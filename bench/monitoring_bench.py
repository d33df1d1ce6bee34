"""What monitoring costs the paths users feel, measured against the same gateway without it.

- Bulk prediction: the data plane's prediction path (`predictions.predict_with`, what Predict and
  every PredictStream chunk run) over many chunks, with the served-forecast recorder on (the
  default 1,000 series per retailer) and off (`monitor_max_series=0`), interleaved in one
  process. The recorder's thread competes for the same cores, so the ratio includes its cost.
- An actuals upload: its wall time (checks, republish, scoring the recorded forecasts, drift),
  beside an UploadDataset of the same file.

    python -m bench.monitoring_bench [--stores 20] [--rows 400000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPEATS = 5
CHUNK_ROWS = 20_000


def _service(data_dir: Path, max_series: int):
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService

    service = ForecastService(GatewayConfig(data_dir=data_dir, monitor_max_series=max_series),
                              LocalBackend(training_slots=1))
    service.start()
    return service


def _train(workdir: Path, history: pd.DataFrame) -> Path:
    """A small XGBoost artifact trained on `history` with the library (no gateway)."""
    from forecasting import training

    data = workdir / "history.csv"
    history.to_csv(data, index=False)
    result = training.train(str(data), {"model_kind": "xgboost", "num_round": "40",
                                        "early_stopping_rounds": "5", "refit": "false"},
                            log=lambda _line: None)
    out = workdir / "model"
    result.save(out)
    return out


def run(stores: int, rows: int) -> dict:
    """Measure; returns a flat dict (rates in rows/s, times in s)."""
    from forecast_gateway.dataplane import Tenant
    from forecast_gateway.domain import RowColumns

    from forecasting import synthetic

    frame = synthetic.generate(n_stores=stores, start="2016-01-01", end="2017-08-15", seed=3)
    frame["date"] = pd.to_datetime(frame["date"])
    cut = frame["date"].max() - pd.Timedelta(days=14)
    history, later = frame[frame["date"] <= cut], frame[frame["date"] > cut]
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-") as tmp:
        work = Path(tmp)
        model = _train(work, history)
        services = {name: _service(work / name, cap) for name, cap in
                    (("recorded", 1000), ("off", 0))}
        refs = {}
        for name, service in services.items():
            refs[name] = service.models.import_model(Tenant("bench"), model).ref
        grid = pd.concat([history[["store_nbr", "family"]].drop_duplicates()] * 1)
        days = pd.date_range(cut + pd.Timedelta(days=1), periods=14)
        cells = grid.merge(pd.DataFrame({"date": days}), how="cross")
        chunk = cells.head(CHUNK_ROWS)
        columns = RowColumns(
            day=chunk["date"].to_numpy().astype("datetime64[D]").astype(np.int32),
            store_nbr=chunk["store_nbr"].to_numpy(np.int32),
            family=chunk["family"].to_numpy(dtype=str), onpromotion=None)
        n_chunks = max(1, rows // len(chunk))
        timings: dict[str, list[float]] = {name: [] for name in services}
        for _ in range(REPEATS):
            for name, service in services.items():
                service.predictions.predict_with(refs[name], columns)  # warm
                t0 = time.perf_counter()
                for _ in range(n_chunks):
                    service.predictions.predict_with(refs[name], columns)
                service.monitoring.recorder.flush(60)
                timings[name].append(time.perf_counter() - t0)
        recorded = services["recorded"]
        actuals = work / "actuals.csv"
        later.assign(date=later["date"].dt.strftime("%Y-%m-%d")).to_csv(actuals, index=False)
        t0 = time.perf_counter()
        outcome = recorded.monitoring.append_actuals(Tenant("bench"), actuals, correct=False)
        append_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        recorded.datasets.store(Tenant("bench"), "a.csv", "csv", actuals, "", move=False)
        upload_s = time.perf_counter() - t0
        served = recorded.monitoring.report(Tenant("bench")).served_records
        for service in services.values():
            service.close()
    total = n_chunks * len(chunk)
    on = total / statistics.median(timings["recorded"])
    off = total / statistics.median(timings["off"])
    # Each repeat ran both sides back to back: the median of their ratios is the least noisy.
    ratio = statistics.median(o / r for r, o in zip(timings["recorded"], timings["off"]))
    return {
        "series": len(grid), "rows_per_run": total, "chunk_rows": len(chunk),
        "recorded_rows_per_s": round(on), "unrecorded_rows_per_s": round(off),
        "recorded_to_unrecorded_ratio": round(ratio, 3),
        "served_records": served, "actuals_rows": len(later),
        "append_actuals_s": round(append_s, 3), "upload_same_file_s": round(upload_s, 3),
        "append_to_upload_ratio": round(append_s / upload_s, 2),
        "new_live_version": outcome.model_version,
    }


def markdown(r: dict) -> str:
    """The docs/benchmarks.md section's body."""
    return "\n".join([
        (f"`python -m bench.monitoring_bench`: "
         f"{r['series']:,} series; {r['rows_per_run']:,} rows per run through the data plane's "
        f"prediction path in chunks of {r['chunk_rows']:,}, recorder on vs off, interleaved."),
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| bulk rows/s, recording served forecasts | {r['recorded_rows_per_s']:,} |",
        f"| bulk rows/s, recording off | {r['unrecorded_rows_per_s']:,} |",
        (f"| **ratio on/off** (median of {REPEATS} back-to-back pairs) | "
        f"**{r['recorded_to_unrecorded_ratio']}** |"),
        f"| served forecasts kept (first per cell) | {r['served_records']:,} |",
        (f"| AppendActuals of {r['actuals_rows']:,} rows (check, republish, score, drift) | "
        f"{r['append_actuals_s']} s |"),
        f"| the same file stored as a dataset | {r['upload_same_file_s']} s |",
        f"| ratio | {r['append_to_upload_ratio']} |",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--rows", type=int, default=400_000)
    args = parser.parse_args(argv)
    result = run(args.stores, args.rows)
    print(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
