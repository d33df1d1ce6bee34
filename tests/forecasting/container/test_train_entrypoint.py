"""`train` as a real process in an /opt/ml-shaped tree (OPT_ML moves the root)."""

import json
import re
from pathlib import Path

from sagemaker_job import SAMPLE, make_opt_ml, run_train

METRIC_REGEX = r"xgboost\.test\.rmsle=([0-9.]+)"   # what a MetricDefinitions entry would use


def test_train_writes_a_model_and_metric_lines(trained_opt_ml):
    model = trained_opt_ml / "model"
    assert (model / "artifact.json").exists() and (model / "members/xgboost/model.ubj").exists()
    assert not (trained_opt_ml / "output" / "failure").exists()


def test_metric_lines_match_a_metric_definition_regex(tmp_path):
    root = make_opt_ml(tmp_path / "opt_ml", hyperparameters={"num_round": "10"})
    result = run_train(root)
    assert result.returncode == 0, result.stderr
    match = re.search(METRIC_REGEX, result.stdout)
    assert match and float(match.group(1)) > 0
    assert "progress stage=fit" in result.stdout


def test_bad_data_fails_with_a_readable_failure_file(tmp_path):
    root = make_opt_ml(tmp_path / "opt_ml", data=b"date,store_nbr,family,sales\n"
                                                 b"2017-01-01,1,A,-3\n")
    result = run_train(root)
    assert result.returncode == 2
    failure = (root / "output" / "failure").read_text()
    assert failure == "ClientError: column 'sales': must be >= 0 (rows 1)"
    assert "Traceback" not in result.stderr
    assert not (root / "model" / "artifact.json").exists()


def test_bad_hyperparameter_fails_with_a_readable_failure_file(tmp_path):
    root = make_opt_ml(tmp_path / "opt_ml", hyperparameters={"num_round": "abc"})
    result = run_train(root)
    assert result.returncode == 2
    assert (root / "output" / "failure").read_text() == (
        "ClientError: hyperparameter 'num_round': must be an integer, got 'abc'")


def test_missing_channel_and_bad_content_type(tmp_path):
    root = make_opt_ml(tmp_path / "a", data=None)
    assert run_train(root).returncode == 2
    assert "channel 'train' has no data files" in (root / "output" / "failure").read_text()
    root = make_opt_ml(tmp_path / "b", content_type="application/x-recordio-protobuf")
    assert run_train(root).returncode == 2
    assert "is not supported" in (root / "output" / "failure").read_text()


def test_bad_config_json_is_a_client_error(tmp_path):
    root = make_opt_ml(tmp_path / "opt_ml")
    (root / "input" / "config" / "hyperparameters.json").write_text("{oops")
    assert run_train(root).returncode == 2
    assert "hyperparameters.json is not valid JSON" in (root / "output/failure").read_text()


def test_sigterm_stops_training_with_a_failure_file(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = make_opt_ml(tmp_path / "opt_ml", hyperparameters={
        "num_round": "100000", "early_stopping_rounds": "10000", "eta": "0.0001"})
    proc = subprocess.Popen([str(Path(sys.executable).parent / "train")],
                            env={**os.environ, "OPT_ML": str(root)},
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:                    # wait until boosting has started
        if line.startswith("progress stage=fit"):
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "SIGTERM" in (root / "output" / "failure").read_text()


def test_a_validation_channel_adds_history_rows(tmp_path):
    import pandas as pd

    sample = pd.read_csv(SAMPLE)
    cut = sample["date"] >= "2017-06-01"
    root = make_opt_ml(tmp_path / "opt_ml", data=sample[~cut].to_csv(index=False).encode(),
                       hyperparameters={"num_round": "10"})
    validation = root / "input" / "data" / "validation"
    validation.mkdir(parents=True)
    sample[cut].to_csv(validation / "later.csv", index=False)
    result = run_train(root)
    assert result.returncode == 0, result.stderr
    assert "1 file(s) in channel 'train' and 1 in 'validation'" in result.stdout
    meta = json.loads((root / "model" / "artifact.json").read_text())
    assert meta["data"]["rows"] == len(sample) and meta["data"]["end"] == sample["date"].max()


def test_rows_repeated_across_channels_are_rejected(tmp_path):
    import pandas as pd

    sample = pd.read_csv(SAMPLE)
    root = make_opt_ml(tmp_path / "opt_ml")
    validation = root / "input" / "data" / "validation"
    validation.mkdir(parents=True)
    sample.head(3).to_csv(validation / "again.csv", index=False)
    assert run_train(root).returncode == 2
    assert "may appear only once" in (root / "output" / "failure").read_text()
