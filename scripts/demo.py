#!/usr/bin/env python3
"""`make demo`: the whole product on one machine, no Docker, no AWS.

Starts `forecast-gateway` (embedded local backend) on a free port with a fresh data dir
(./var/demo), creates the demo retailer and its API key with the offline admin command
(`forecast-gateway keys create-retailer`, printed so you can repeat it), uploads data/sample/train.csv, trains with a live progress line, streams forecasts
for the 16 days after the history, prints a few of them and the metrics table (model against
the seasonal-naive baseline), then stops the gateway with SIGTERM and checks that it exited
cleanly.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]  # works before `pip install -e`

from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_client.progress import JobProgress, ProgressLine
from forecast_gateway.testing.process import GatewayProcess

from forecasting.forecast import future_rows

SAMPLE = ROOT / "data" / "sample" / "train.csv"
RETAILER = "demo-retail"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "demo"),
                        help="gateway data dir, wiped first (default ./var/demo)")
    parser.add_argument("--num-round", default="300", help="XGBoost rounds (default 300)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)

    print(f"1. starting forecast-gateway (local backend, data dir {data_dir})")
    log_file = data_dir.parent / "demo-gateway.log"
    log_file.unlink(missing_ok=True)  # this run's log only
    gateway = GatewayProcess(data_dir, args=("--log-format", "json"), log_path=log_file)
    try:
        gateway.start()
    except RuntimeError as exc:
        raise SystemExit(f"demo: {exc}") from None
    print(f"   serving on {gateway.target}; logs in {log_file}")
    print(f"   API key for {RETAILER} (auth is on): forecast-gateway keys --data-dir {data_dir} "
          f"create-retailer {RETAILER} --exist-ok --print")
    try:
        api_key = gateway.api_key(RETAILER)
    except RuntimeError as exc:
        gateway.stop()
        raise SystemExit(f"demo: {exc}") from None
    print(f"   then: export FORECAST_API_KEY={api_key}   (the SDK and the `forecast` CLI read it)")
    try:
        with ForecastClient(target=gateway.target, api_key=api_key) as client:
            client.wait_until_ready(10)
            print(f"2. uploading {SAMPLE.relative_to(ROOT)}")
            ds = client.upload_dataset(RETAILER, SAMPLE)
            print(f"   dataset {ds.dataset_id}: {ds.rows:,} rows, {ds.series} series, "
                  f"{ds.start_date} .. {ds.end_date}")

            print("3. training (xgboost, 16-day horizon)")
            job = client.train(RETAILER, dataset_id=ds.dataset_id, model_kind="xgboost",
                               hyperparameters={"num_round": args.num_round,
                                                "early_stopping_rounds": "20"})
            started = time.monotonic()
            progress = ProgressLine(sys.stdout)
            # Stages in words, elapsed time and an estimate of the time left, as the CLI shows.
            final = client.wait_for_job(RETAILER, job.job_id, on_update=JobProgress(progress))
            progress.done()
            if final.state != pb.JOB_STATE_SUCCEEDED:
                print(f"demo: training {pb.JobState.Name(final.state)}: {final.failure_reason}",
                      file=sys.stderr)
                return 1
            print(f"   job {final.job_id} succeeded in {time.monotonic() - started:.1f} s; "
                  f"model {final.model_version} is live")

            history = pd.read_csv(SAMPLE, usecols=["date", "store_nbr", "family"])
            rows = future_rows(history, 16)
            print(f"4. streaming forecasts for {len(rows):,} rows (16 days x {ds.series} series)")
            t0 = time.monotonic()
            out = client.predict_frame(RETAILER, rows, chunk_rows=128, max_in_flight=4)
            print(f"   {len(out):,} forecasts in {time.monotonic() - t0:.2f} s; a few of them:")
            sample = out[out["family"] == out["family"].iloc[0]].head(8)
            print(sample.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))

            print("5. metrics of the live model on its held-out test window")
            m = client.get_metrics(RETAILER)
            print(f"   test window {m.test_start_date} .. {m.test_end_date} "
                  f"(origin {m.origin_date}, horizon {m.horizon})")
            table = client.metrics_frame(RETAILER)
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    except ForecastClientError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        print("6. stopping the gateway (SIGTERM: drain, then exit)")
        code = gateway.stop(60)
        print(f"   gateway exited with code {code}")
    if code != 0:
        print(f"demo: the gateway did not stop cleanly (exit code {code}); see {log_file}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
