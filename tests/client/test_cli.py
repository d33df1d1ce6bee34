"""The `forecast` CLI run as a real subprocess, as a user would: every bad input's one-line
error, the whole flow against a real gateway, re-attaching to a job, stdin and stdout."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import run_forecast as forecast

pytestmark = pytest.mark.slow

#: Nothing listens here: a command that fails with exit 2 against it failed before any call.
UNREACHABLE = "127.0.0.1:1"
GOOD_ROWS = "date,store_nbr,family\n2017-08-16,1,BEVERAGES\n"


def test_help_version_and_usage_errors() -> None:
    r = forecast("--help")
    assert r.returncode == 0 and "predict" in r.stdout and "Exit codes" in r.stdout
    for command, flag in (("train", "--promote"), ("wait", "JOB_ID"), ("predict", "--days"),
                          ("turnover", "--inventory"), ("plot", "--metrics")):
        r = forecast(command, "--help")
        assert r.returncode == 0 and flag in r.stdout, (command, r.stdout)
    r = forecast("--version")
    assert r.returncode == 0 and r.stdout == "forecast 0.1.0 (forecast-client)\n"
    assert_one_line_error(forecast("models"), 2, "--retailer")
    assert_one_line_error(forecast("bogus"), 2, "invalid choice: 'bogus'")


# (arguments after --retailer acme, stdin, words the one-line error must contain). Each is
# caught before any call: the target is unreachable, yet each ends with exit 2.
BAD_INPUTS = [
    (["predict"], None, "one of the arguments --days --input is required"),
    (["predict", "--days", "16", "--input", "{good}"], None, "not allowed with argument"),
    (["predict", "--days", "0"], None, "--days: 0 must be 1 or more"),
    (["predict", "--days", "100000"], None, "--days: 100000 is more than 366 days"),
    (["predict", "--days", "16", "--output", "{tmp}/no/such/dir/f.csv"], None,
     "no/such/dir does not exist (create it first)"),
    (["plot", "--store", "1", "--family", "A", "--output", "{tmp}/nope/p.png"], None,
     "nope does not exist"),
    (["predict", "--days", "16", "--levels", "120"], None, "120 is not a percentage above 0"),
    (["predict", "--days", "16", "--levels", "x"], None, "'x' is not a number"),
    (["predict", "--days", "16", "--output", "out.txt"], None, "name a .csv or .parquet file"),
    (["predict", "--input", "{tmp}/missing.csv"], None, "missing.csv: no such file"),
    (["predict", "--input", "-"], "date,store_nbr\n2017-08-16,1\n",
     "--input stdin: input is missing column(s): family"),
    (["predict", "--input", "-"], "", "--input stdin: it is empty"),
    (["predict", "--input", "-"], "date,store_nbr,family\n2017-08-16,x,A\n",
     "store_nbr: values must be integers"),
    (["predict", "--input", "-"], "date,store_nbr,family\n16/08/2017,1,A\n",
     "date: '16/08/2017' is not a YYYY-MM-DD date"),
    (["predict", "--input", "-"], "date,store_nbr,family\n2017-08-16,1,A\n,1,B\n",
     "date: missing in 1 row(s)"),
    (["predict", "--input", "{good}", "--stores", "1"], None, "go with --days"),
    (["predict", "--input", "{good}", "--chunk-rows", "0"], None, "--chunk-rows"),
    (["turnover"], None, "--inventory"),
    (["turnover", "--inventory", "{tmp}/missing.csv"], None, "no such file"),
    (["turnover", "--inventory", "-", "--lead-time", "0"], "", "--lead-time"),
    (["turnover", "--inventory", "-"], "store_nbr,family\n1,A\n",
     "--inventory stdin: inventory: missing column(s) on_hand"),
    (["turnover", "--inventory", "-"], "store_nbr,family,on_hand\n1,A,lots\n", "on_hand"),
    (["turnover", "--inventory", "{good}", "--output", "t.json"], None, ".csv or .parquet"),
    (["plot", "--store", "1", "--family", "A", "--output", "p.jpg"], None, "name a .png file"),
    (["plot", "--output", "{tmp}/p.png"], None, "a forecast plot needs --store and --family"),
    (["plot", "--supply", "--store", "1", "--output", "{tmp}/p.png"], None,
     "--supply needs --inventory"),
    (["plot", "--metrics", "--supply", "--output", "p.png"], None, "not allowed with"),
    (["train", "--dataset-id", "ds-1", "--hp", "num_round"], None, "expected KEY=VALUE"),
    (["train", "--dataset-id", "ds-1", "--promote", "sometimes"], None, "invalid choice"),
    (["wait"], None, "JOB_ID"),
]


@pytest.mark.parametrize(("args", "stdin", "words"), BAD_INPUTS,
                         ids=[f"{a[0]}-{i}" for i, (a, _, _) in enumerate(BAD_INPUTS)])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], stdin: str | None,
                                          words: str) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD_ROWS)
    argv = [a.format(good=good, tmp=tmp_path) for a in args]
    r = forecast(argv[0], "--retailer", "acme", *argv[1:], target=UNREACHABLE, stdin=stdin)
    assert_one_line_error(r, 2, words)


def test_bad_global_flags() -> None:
    assert_one_line_error(forecast("--timeout", "-1", "models", "--retailer", "acme"), 2,
                          "--timeout: -1 must be above 0")
    assert_one_line_error(forecast("--target", "nohost", "models", "--retailer", "acme"), 2,
                          "--target must be HOST:PORT")


def test_unreachable_gateway_says_what_to_do() -> None:
    r = forecast("--target", UNREACHABLE, "models", "--retailer", "acme")
    assert_one_line_error(r, 1, f"cannot reach the gateway at {UNREACHABLE}: start it "
                                "(forecast-gateway) or give its address with --target")


def test_plot_without_matplotlib_says_what_to_install(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    r = forecast("plot", "--retailer", "acme", "--store", "1", "--family", "A", "--output",
                 str(tmp_path / "p.png"), target=UNREACHABLE,
                 env={"PYTHONPATH": str(shadow.parent)})
    assert_one_line_error(r, 2, "plotting needs matplotlib, which is not installed: pip install 'forecast-client[plot]'")


def test_full_cli_flow(gateway, tmp_path: Path, sample_csv: Path, future_rows: pd.DataFrame,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_API_KEY", gateway.api_key("cli-co"))  # as a user would
    t = gateway.target
    r = forecast("upload", "--retailer", "cli-co", str(sample_csv), target=t)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dataset ds-") and "19,320 rows" in r.stdout

    r = forecast("train", "--retailer", "cli-co", "--data", str(sample_csv), "--hp", "num_round=30",
                 "--hp", "early_stopping_rounds=5", target=t)
    assert r.returncode == 0, r.stderr
    job_id, state = r.stdout.split()
    assert job_id.startswith("job-") and state in ("QUEUED", "RUNNING")

    r = forecast("wait", "--retailer", "cli-co", job_id, target=t)  # re-attach to the job
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{job_id}\tSUCCEEDED\tmodel v1 is live\n"
    progress = [line for line in r.stderr.splitlines() if "elapsed" in line]
    assert any("training XGBoost" in line for line in progress), r.stderr
    assert any("left" in line for line in progress)  # an estimate of the time left
    assert "refit_" not in r.stderr and " fit " not in r.stderr  # stages in words
    assert "no live model to compare against" in r.stderr  # the promotion decision
    r = forecast("wait", "--retailer", "cli-co", job_id, "-q", target=t)  # finished: at once
    assert r.returncode == 0 and r.stdout.startswith(f"{job_id}\tSUCCEEDED")

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

    src, dst = tmp_path / "future.csv", tmp_path / "forecasts.csv"
    future_rows.to_csv(src, index=False)
    r = forecast("predict", "--retailer", "cli-co", "--input", str(src), "--output", str(dst),
                 "--chunk-rows", "64", target=t)
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(dst)
    assert list(out["id"]) == list(future_rows["id"]) and out["sales"].notna().all()
    assert "rows/s" in r.stderr  # progress on a multi-chunk file

    # The same rows through stdin and stdout (a pipe) give the same forecasts.
    r = forecast("predict", "--retailer", "cli-co", "--input", "-", "--output", "-",
                 target=t, stdin=src.read_text())
    assert r.returncode == 0, r.stderr
    piped = pd.read_csv(io.StringIO(r.stdout))
    assert list(piped["id"]) == list(out["id"])
    assert piped["sales"].tolist() == pytest.approx(out["sales"].tolist())

    r = forecast("promote", "--retailer", "cli-co", "v1", target=t)
    assert r.returncode == 0 and "v1 is live" in r.stdout


def test_server_errors_exit_1_with_one_line(gateway, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    t = gateway.target
    assert_one_line_error(forecast("jobs", "--retailer", "acme", "--job-id", "job-doesnotexist",
                                   target=t), 1, "'job-doesnotexist' not found")
    assert_one_line_error(forecast("cancel", "--retailer", "acme", "job-doesnotexist",
                                   target=t), 1, "'job-doesnotexist' not found")
    assert_one_line_error(forecast("wait", "--retailer", "acme", "job-doesnotexist", target=t),
                          1, "'job-doesnotexist' not found")
    bad = tmp_path / "bad.csv"
    bad.write_text("date,store_nbr,family,sales\n2017-01-01,x,A,1\n")
    assert_one_line_error(forecast("upload", "--retailer", "acme", str(bad), target=t), 1,
                          "store_nbr")
    assert_one_line_error(forecast("upload", "--retailer", "acme",
                                   str(tmp_path / "missing.csv"), target=t), 2, "no such file")
    (tmp_path / "sales.txt").write_text("date,store_nbr,family,sales\n")
    r = forecast("upload", "--retailer", "acme", str(tmp_path / "sales.txt"), target=t)
    assert "header." not in r.stderr, r.stderr   # the API's field names stay out of CLI words
    assert r.returncode in (1, 2) and "sales.txt" in r.stderr, r.stderr
    monkeypatch.setenv("FORECAST_API_KEY", gateway.api_key("empty-co"))
    assert_one_line_error(forecast("predict", "--retailer", "empty-co", "--days", "16",
                                   target=t), 1, "has no trained model yet",
                          "train one first (forecast train)")
    monkeypatch.setenv("FORECAST_API_KEY", "fgk_not_a_real_key")
    assert_one_line_error(forecast("models", "--retailer", "acme", target=t), 1,
                          "check --api-key or FORECAST_API_KEY")


def test_shell_completion_completes_commands_and_flags_in_bash() -> None:
    """`forecast completion bash`, sourced by a real bash, completes a command and a flag;
    `zsh` gives a script too. Neither needs a gateway."""
    import shutil

    script = forecast("completion", "bash", target=UNREACHABLE)
    assert script.returncode == 0, script.stderr
    assert forecast("completion", "zsh", target=UNREACHABLE).stdout.startswith("#compdef forecast")

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (f'source /dev/stdin; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; '
                 f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
                 f'_shtab_forecast forecast {words[-1]} {words[-2]}; echo "${{COMPREPLY[@]}}"')
        run = subprocess.run([shutil.which("bash") or "bash", "-c", probe], input=script.stdout,
                             capture_output=True, text=True, check=True, timeout=30)
        return run.stdout.split()

    assert complete("forecast", "pre") == ["predict"]
    assert complete("forecast", "predict", "--da") == ["--days"]
