"""ExportForecasts against PredictStream for the same rows: rows/s and the gateway's peak RSS.

A model is trained (in this process, small hyperparameters) on an M5-shaped synthetic history of
``--series`` series (``--stores`` stores x items) over ``--history-days`` days, imported into a
data dir, and served by real ``forecast-gateway`` processes on 127.0.0.1 (local backend). Each
run gets a fresh gateway, warms it with a one-series Forecast (the model loads), reads its RSS,
then either

- export: ``ForecastClient.export_forecasts`` of the series x ``--days`` days with ``--levels``
  to a ``file://`` Parquet file, waited for; or
- stream: the same rows (whole series per chunk, ``--chunk-rows``) with the same levels over one
  PredictStream call (4 chunks in flight), answers read and dropped by the client,

and reports the wall time (rows/s) and the gateway's peak RSS (VmHWM) against the RSS before the
call. Runs alternate (export, stream, stream, export, ...) so drift on a shared machine hits both
alike. ``--subset-stores`` also exports only that many stores of the same model: the same model in
memory, a tenth of the series, so the RSS the export itself adds can be compared across sizes.

    python -m bench.export_bench --series 20000 --stores 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RETAILER = "bench"
HP = {"num_round": "30", "early_stopping_rounds": "5"}
MAX_IN_FLIGHT = 4


def _rss_kb(pid: int, field: str) -> int:
    """A /proc/<pid>/status field in kB (VmRSS now, VmHWM the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def train_model(workdir: Path, stores: int, series: int, history_days: int) -> tuple[Path, dict]:
    """The synthetic history and a model trained on it (reused from `workdir` when present)."""
    from forecasting import synthetic, training

    model_dir = workdir / f"model-{stores}x{series // stores}-{history_days}d"
    info = model_dir.with_suffix(".json")
    if model_dir.is_dir() and info.is_file():
        return model_dir, json.loads(info.read_text())
    data = workdir / f"history-{stores}x{series // stores}-{history_days}d.parquet"
    rows = synthetic.write_m5_like(str(data), stores, series // stores, history_days)
    started = time.perf_counter()
    model = training.train(str(data), HP, log=lambda line: None)
    facts = {"history_rows": rows, "train_s": round(time.perf_counter() - started, 1)}
    model.save(str(model_dir))
    info.write_text(json.dumps(facts))
    return model_dir, facts


def _gateway(data_dir: Path, files: Path):
    from forecast_gateway.testing.process import GatewayProcess

    return GatewayProcess(data_dir, env={
        "FORECAST_GATEWAY_LOG_LEVEL": "WARNING", "FORECAST_GATEWAY_ALLOW_FILE_URIS": "true",
        "FORECAST_GATEWAY_FILE_URI_ROOT": str(files),
        "FORECAST_GATEWAY_MONITOR_MAX_SERIES": "0"},   # both sides: no live-accuracy sample
        log_path=data_dir.parent / "gateway.log")


def _batches(series, last_day: int, days: int, chunk_rows: int):
    """RowBatches of whole series (the recursive forecast needs a series' days together)."""
    from forecast_client.rows import make_batch

    per = max(1, chunk_rows // days)
    dates = np.arange(last_day + 1, last_day + 1 + days).astype("datetime64[D]")
    stores = series["store_nbr"].to_numpy()
    families = series["family"].to_numpy(str)
    for start in range(0, len(series), per):
        n = min(per, len(series) - start)
        yield make_batch(np.tile(dates, n), np.repeat(stores[start:start + n], days),
                         np.repeat(families[start:start + n], days),
                         np.zeros(n * days, dtype=np.int32))


def one_run(side: str, data_dir: Path, files: Path, days: int, levels: list[float],
            chunk_rows: int, stores: list[int]) -> dict:
    """One fresh gateway, one export or one stream; seconds, rows and RSS."""
    from forecast_client import ForecastClient

    from forecasting import artifact

    with _gateway(data_dir, files) as gw, \
            ForecastClient(target=gw.target, api_key=gw.api_key(RETAILER)) as client:
        client.wait_until_ready(30)
        pid = gw.proc.pid
        index = artifact.series_index(next((data_dir / "retailers" / RETAILER / "models")
                                           .iterdir()))
        series = index.series.sort_values(["store_nbr", "family"], kind="stable")
        if stores:
            series = series[series["store_nbr"].isin(stores)]
        client.forecast(RETAILER, days=1, stores=[int(series["store_nbr"].iloc[0])],
                        families=[str(series["family"].iloc[0])], levels=levels)  # loads it
        before = _rss_kb(pid, "VmRSS")
        rows = len(series) * days
        started = time.perf_counter()
        if side == "export":
            target = files / RETAILER / "export.parquet"
            job = client.export_forecasts(RETAILER, target.as_uri(), days=days, stores=stores,
                                          levels=levels, wait=True, timeout_s=7200)
            assert job.state == 3, job.failure_reason          # JOB_STATE_SUCCEEDED
            assert job.rows == rows, (job.rows, rows)
            size = target.stat().st_size
        else:
            last = int((index.last_date - np.datetime64(0, "D")).astype(np.int64))
            got = 0
            for response in client._stream(RETAILER, _batches(series, last, days, chunk_rows),
                                           model_version="", max_in_flight=MAX_IN_FLIGHT,
                                           levels=levels):
                got += len(response.forecast)
            assert got == rows, (got, rows)
            size = 0
        seconds = time.perf_counter() - started
        peak = _rss_kb(pid, "VmHWM")
    return {"side": side, "series": len(series), "rows": rows, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds), "rss_before_mb": round(before / 1024),
            "peak_rss_mb": round(peak / 1024), "added_mb": round((peak - before) / 1024),
            "file_mb": round(size / 2**20, 1)}


def run(series: int, stores: int, history_days: int, days: int, levels: list[float],
        repeats: int, chunk_rows: int, subset_stores: int, workdir: Path) -> dict:
    """Train (or reuse) the model, then alternate export and stream runs; the medians."""
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant

    model_dir, facts = train_model(workdir, stores, series, history_days)
    with tempfile.TemporaryDirectory(prefix="export-bench-", dir=workdir) as tmp:
        data_dir, files = Path(tmp) / "data", Path(tmp) / "files"
        (files / RETAILER).mkdir(parents=True)
        service = ForecastService(GatewayConfig(data_dir=data_dir), LocalBackend())
        service.models.import_model(Tenant(RETAILER), model_dir)
        service.close()
        runs = []
        for i in range(repeats):
            order = ("export", "stream") if i % 2 == 0 else ("stream", "export")
            runs += [one_run(side, data_dir, files, days, levels, chunk_rows, [])
                     for side in order]
        subset = [one_run("export", data_dir, files, days, levels, chunk_rows,
                          list(range(1, subset_stores + 1)))] if subset_stores else []

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["side"] == side)

    export_rate, stream_rate = median("export", "rows_per_s"), median("stream", "rows_per_s")
    return {"series": series, "days": days, "levels": levels, "rows": series * days,
            **facts, "chunk_rows": chunk_rows, "runs": runs, "subset": subset,
            "export_rows_per_s": round(export_rate), "stream_rows_per_s": round(stream_rate),
            "export_to_stream_ratio": round(export_rate / stream_rate, 3),
            "export_peak_rss_mb": median("export", "peak_rss_mb"),
            "stream_peak_rss_mb": median("stream", "peak_rss_mb"),
            "export_added_mb": median("export", "added_mb"),
            "stream_added_mb": median("stream", "added_mb")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--history-days", type=int, default=120)
    parser.add_argument("--days", type=int, default=16)
    parser.add_argument("--levels", type=float, nargs="*", default=[80.0, 95.0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--subset-stores", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "export-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args.series, args.stores, args.history_days, args.days, args.levels,
                         args.repeats, args.chunk_rows, args.subset_stores, args.workdir),
                     indent=2))


if __name__ == "__main__":
    main()
