"""The `forecast` CLI run as a real subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def forecast(*args: str, target: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if target:
        env["FORECAST_TARGET"] = target
    return subprocess.run([sys.executable, "-m", "forecast_client.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_help_and_usage_errors() -> None:
    r = forecast("--help")
    assert r.returncode == 0 and "predict" in r.stdout and "Exit codes" in r.stdout
    r = forecast("train", "--help")
    assert r.returncode == 0 and "--wait" in r.stdout
    r = forecast("models")  # --retailer missing
    assert r.returncode == 2 and "--retailer" in r.stderr
    r = forecast("bogus")
    assert r.returncode == 2
    r = forecast("--target", "127.0.0.1:1", "train", "--retailer", "acme", "--dataset-id", "ds-1",
                 "--hp", "num_round")  # caught before any call
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr


def test_unreachable_gateway_is_one_line_exit_1() -> None:
    r = forecast("--target", "127.0.0.1:1", "models", "--retailer", "acme")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("forecast: error: cannot reach the gateway at 127.0.0.1:1: start it")


def test_predict_input_problems_are_usage_errors_exit_2(tmp_path: Path) -> None:
    """Caught before any call: the target is unreachable, yet each ends with exit 2."""
    def predict(src: Path, dst: str = "out.csv", *extra: str) -> subprocess.CompletedProcess:
        return forecast("--target", "127.0.0.1:1", "predict", "--retailer", "acme",
                        "--input", str(src), "--output", str(tmp_path / dst), *extra)

    good = tmp_path / "future.csv"
    good.write_text("date,store_nbr,family\n2017-08-16,1,A\n")
    no_family = tmp_path / "no_family.csv"
    no_family.write_text("date,store_nbr\n2017-08-16,1\n")
    bad_store = tmp_path / "bad_store.csv"
    bad_store.write_text("date,store_nbr,family\n2017-08-16,x,A\n")
    for r, words in [(predict(good, "out.txt"), ".csv or .parquet"),
                     (predict(tmp_path / "missing.csv"), "no such file"),
                     (predict(no_family), "missing column(s): family"),
                     (predict(bad_store), "store_nbr: values must be integers"),
                     (predict(good, "out.csv", "--chunk-rows", "0"), "--chunk-rows")]:
        assert r.returncode == 2 and words in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_full_cli_flow(gateway, tmp_path: Path, sample_csv: Path, future_rows: pd.DataFrame,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_API_KEY", gateway.api_key("cli-co"))  # as a user would
    t = gateway.target
    r = forecast("upload", "--retailer", "cli-co", str(sample_csv), target=t)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dataset ds-") and "19,320 rows" in r.stdout

    r = forecast("train", "--retailer", "cli-co", "--data", str(sample_csv), "--hp", "num_round=30",
                 "--hp", "early_stopping_rounds=5", "--wait", target=t)
    assert r.returncode == 0, r.stderr
    assert "SUCCEEDED" in r.stdout and "v1 is live" in r.stdout
    assert "fit" in r.stderr and "%" in r.stderr  # progress shown while waiting

    r = forecast("jobs", "--retailer", "cli-co", target=t)
    assert r.returncode == 0 and "SUCCEEDED" in r.stdout and r.stdout.startswith("JOB")
    r = forecast("jobs", "--retailer", "cli-co", "--json", target=t)
    assert r.returncode == 0, r.stderr
    assert [job["state"] for job in json.loads(r.stdout)] == ["JOB_STATE_SUCCEEDED"]

    r = forecast("models", "--retailer", "cli-co", target=t)
    assert r.returncode == 0 and "v1" in r.stdout and "*" in r.stdout
    r = forecast("models", "--retailer", "cli-co", "--json", target=t)
    assert r.returncode == 0, r.stderr
    assert [(m["version"], m["live"]) for m in json.loads(r.stdout)] == [("v1", True)]

    r = forecast("metrics", "--retailer", "cli-co", target=t)
    assert r.returncode == 0 and "RMSLE" in r.stdout and "(baseline)" in r.stdout
    r = forecast("metrics", "--retailer", "cli-co", "--json", target=t)
    doc = json.loads(r.stdout)
    assert doc["model"]["version"] == "v1" and len(doc["evaluations"]) >= 2

    src, dst = tmp_path / "future.csv", tmp_path / "out" / "forecasts.csv"
    future_rows.to_csv(src, index=False)
    r = forecast("predict", "--retailer", "cli-co", "--input", str(src), "--output", str(dst),
                 "--chunk-rows", "64", target=t)
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(dst)
    assert list(out["id"]) == list(future_rows["id"]) and out["sales"].notna().all()
    assert "rows/s" in r.stderr  # progress on a multi-chunk file

    r = forecast("promote", "--retailer", "cli-co", "v1", target=t)
    assert r.returncode == 0 and "v1 is live" in r.stdout


def test_server_errors_exit_1_with_one_line(gateway, tmp_path: Path) -> None:
    r = forecast("jobs", "--retailer", "acme", "--job-id", "job-doesnotexist", target=gateway.target)
    assert r.returncode == 1 and r.stderr.startswith("forecast: error: ")
    assert "'job-doesnotexist' not found" in r.stderr and r.stderr.count("\n") == 1
    r = forecast("cancel", "--retailer", "acme", "job-doesnotexist", target=gateway.target)
    assert r.returncode == 1 and "'job-doesnotexist' not found" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("date,store_nbr,family,sales\n2017-01-01,x,A,1\n")
    r = forecast("upload", "--retailer", "acme", str(bad), target=gateway.target)
    assert r.returncode == 1 and "store_nbr" in r.stderr and r.stderr.count("\n") == 1
    r = forecast("upload", "--retailer", "acme", str(tmp_path / "missing.csv"), target=gateway.target)
    assert r.returncode == 2 and "no such file" in r.stderr
