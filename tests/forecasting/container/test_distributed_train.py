"""`train` on two hosts: two real processes on 127.0.0.1 join XGBoost's collective (hosts
`127.0.0.1` and `localhost`, both loopback), each reads its shard, the first writes the model.

Compared with one process on the same shards: the same model within a tolerance (the quantile
cuts come from two merged sketches instead of one, and `subsample` draws each host's rows with
its own generator), the same series, and a killed host fails the other within the timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sagemaker_job import BIN, SAMPLE, free_port, make_opt_ml

from forecasting import sharding
from forecasting.artifact import load_history
from forecasting.container.env import TRAIN_CHANNEL
from forecasting.predictor import Predictor

HOSTS = ["127.0.0.1", "localhost"]     # sorted: 127.0.0.1 is the primary
# On the 19k-row sample (docs/scaling.md): the test RMSLE within 5% of one host's, and the
# served forecasts within 0.2 RMS on log1p(sales) (measured: 2.9% and 0.14; early stopping
# picked round 22 instead of 33). With cuts that match (integer features) XGBoost's model is
# the same to the bit; the gap is the merged sketch's cuts and each host's subsample draws.
TOLERANCE_RMSLE = 0.05
TOLERANCE_LOG_GAP = 0.2
HP = {"num_round": "40", "early_stopping_rounds": "5", "nthread": "1",
      "collective_timeout_s": "30"}


def _trees(tmp: Path, frame: pd.DataFrame, hosts: list[str], hp: dict) -> list[Path]:
    """One /opt/ml tree per host, each with every shard in its `train` channel (as local mode
    copies a FullyReplicated channel); `train` takes its own."""
    shard = sharding.assign(frame, 2)
    roots = []
    for host in hosts:
        root = make_opt_ml(tmp / host, data=None, hyperparameters=hp,
                           content_type="application/x-parquet")
        sharding.write_shards(frame, shard, 2, root / "input" / "data" / TRAIN_CHANNEL)
        (root / "input" / "config" / "resourceconfig.json").write_text(json.dumps(
            {"current_host": host, "hosts": hosts if len(hosts) > 1 else [host]}))
        roots.append(root)
    return roots


def _start(root: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "OPT_ML": str(root), "FORECAST_TRACKER_PORT": str(port)}
    return subprocess.Popen([str(BIN / "train")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return pd.read_csv(SAMPLE, parse_dates=["date"])


def test_two_hosts_train_one_model_like_one_host(tmp_path, sample):
    single = _trees(tmp_path / "one", sample, ["algo-1"], HP)[0]
    one = _start(single, free_port())
    port = free_port()
    procs = [_start(root, port) for root in _trees(tmp_path / "two", sample, HOSTS, HP)]
    outs = [p.communicate(timeout=300)[0] for p in [one, *procs]]
    assert [p.returncode for p in [one, *procs]] == [0, 0, 0], outs
    primary, other = tmp_path / "two" / HOSTS[0], tmp_path / "two" / HOSTS[1]
    assert not any((other / "model").iterdir())          # only the primary writes
    assert "rank 1 of 2" in outs[2] and "training on 1 file(s)" in outs[2]

    a = json.loads((single / "model" / "artifact.json").read_text())
    b = json.loads((primary / "model" / "artifact.json").read_text())
    assert b["data"]["rows"] == a["data"]["rows"] == len(sample)
    assert b["data"]["series"] == a["data"]["series"]
    assert b["members"]["xgboost"]["train_rows"] == a["members"]["xgboost"]["train_rows"]
    ha, hb = load_history(single / "model" / "history.parquet"), \
        load_history(primary / "model" / "history.parquet")
    assert list(hb.store_nbr) == list(ha.store_nbr) and list(hb.family) == list(ha.family)
    np.testing.assert_array_equal(np.nan_to_num(hb.sales, nan=-1), np.nan_to_num(ha.sales, nan=-1))

    ea = json.loads((single / "model" / "evaluation.json").read_text())
    eb = json.loads((primary / "model" / "evaluation.json").read_text())
    ra = ea["models"]["xgboost"]["overall"]["rmsle"]
    rb = eb["models"]["xgboost"]["overall"]["rmsle"]
    assert abs(rb - ra) <= TOLERANCE_RMSLE * ra, (ra, rb)
    pa, pb = (Predictor.load(r / "model") for r in (single, primary))
    rows = pa.future_rows(16)
    assert rows.equals(pb.future_rows(16))
    gap = np.log1p(pa.predict(rows)) - np.log1p(pb.predict(rows))
    assert float(np.sqrt((gap ** 2).mean())) <= TOLERANCE_LOG_GAP, float(np.sqrt((gap ** 2).mean()))


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_lost_host_fails_the_other_within_the_timeout(tmp_path, sample, how):
    """Killed: its sockets close and the other fails at its next collective call. Frozen
    (SIGSTOP, as a hung host): nothing closes, and the collective's timeout cuts it off."""
    hp = {**HP, "num_round": "100000", "early_stopping_rounds": "10000", "eta": "0.0001",
          "collective_timeout_s": "20"}
    port = free_port()
    roots = _trees(tmp_path, sample, HOSTS, hp)
    procs = [_start(root, port) for root in roots]
    deadline = time.monotonic() + 120
    for line in procs[1].stdout:                  # until the second host is boosting
        if "progress stage=fit" in line or time.monotonic() > deadline:
            break
    started = time.monotonic()
    procs[1].send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    try:
        out = procs[0].communicate(timeout=90)[0]
    finally:
        procs[1].kill()
        procs[1].wait()
    took = time.monotonic() - started
    assert took < (10 if how == "killed" else 20 + 15), took
    assert procs[0].returncode == 3, out
    failure = (roots[0] / "output" / "failure").read_text()
    assert failure.startswith("PlatformError: host 127.0.0.1: the collective of"), failure
    assert not (roots[0] / "model" / "artifact.json").exists()


@pytest.mark.parametrize("layout", ["one file for two hosts", "a series on both hosts"])
def test_bad_shards_fail_every_host_with_a_client_error(tmp_path, sample, layout):
    port = free_port()
    roots = _trees(tmp_path, sample, HOSTS, HP)
    for root in roots:
        channel = root / "input" / "data" / TRAIN_CHANNEL
        if layout == "one file for two hosts":
            (channel / sharding.shard_name(1)).unlink()
        else:   # a whole copy of one series in the second shard too
            first = pd.read_parquet(channel / sharding.shard_name(0))
            key = first.iloc[0][["store_nbr", "family"]]
            series = first[(first["store_nbr"] == key["store_nbr"])
                           & (first["family"] == key["family"])]
            second = pd.read_parquet(channel / sharding.shard_name(1))
            pd.concat([second, series]).to_parquet(channel / sharding.shard_name(1))
    procs = [_start(root, port) for root in roots]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], outs
    failures = [(root / "output" / "failure").read_text() for root in roots]
    expected = ("has no data files for host(s) localhost of 2" if layout.startswith("one")
                else "is in the shards of more than one host")
    assert all(f.startswith("ClientError: ") and expected in f for f in failures), failures
