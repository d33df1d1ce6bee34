"""Training on one vs several SageMaker instances, in SageMaker local mode on this machine.

The training image (``make images``) runs as a local-mode training job
(``Estimator(instance_type="local", instance_count=N)``) on the history of a
``bench.scale_bench`` dataset, sharded by series into N files (``forecasting.sharding``); a
one-instance job reads every shard. Local mode copies every file to every container; each
container takes the shard of its rank (docs/scaling.md). Reported per job: wall time (from
``fit`` to its return, container start included), each container's peak RSS and the bytes it
sent and received on its network interface while in XGBoost's collective (its own log lines),
the rounds boosted, and the held-out RMSLE of the saved model on the test days.

    python -m bench.distributed_bench --data 3m --instances 1,2 --data-dir DIR

On 2 shared cores two instances cannot be faster: they split the same two cores (``nthread``
is 2 for one instance, 1 for each of two), so the wall-time difference is the distributed
overhead (a second container and interpreter, the sketch merge and the allreduce per node).
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.scale_bench import write_data
from forecasting import sharding

IMAGE = "retail-forecast-training:latest"
LINES = {"rss": re.compile(r"host (\S+): peak RSS (\d+) MB"),
         "net": re.compile(r"distributed: host (\S+) sent (\d+) and received (\d+) bytes"),
         "rows": re.compile(r"distributed: rank (\d+) reads (\d+) of (\d+) rows")}


def run_job(history: Path, work: Path, instances: int, hp: dict) -> dict:
    """One local-mode training job on ``instances`` containers; its measurements."""
    import contextlib
    import io

    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession

    channel = work / f"shards-{instances}"
    if not channel.exists():
        frame = pd.read_parquet(history)
        shards = max(instances, 2)        # the same files for every instance count
        sharding.write_shards(frame, sharding.assign(frame, shards), shards, channel)
        del frame
    session = LocalSession()
    out = work / f"out-{instances}"
    out.mkdir(exist_ok=True)
    estimator = Estimator(image_uri=IMAGE, role="arn:aws:iam::000000000000:role/local",
                          instance_count=instances, instance_type="local",
                          output_path=f"file://{out}", sagemaker_session=session,
                          hyperparameters={**hp, "nthread": str(2 // instances or 1)})
    logs = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(logs):
        estimator.fit({"train": f"file://{channel}"}, wait=True, logs="All")
    wall = time.perf_counter() - started
    text = logs.getvalue()
    model = out / estimator.latest_training_job.name / "model.tar.gz"
    if not model.exists():
        model = next(out.rglob("model.tar.gz"))
    with tarfile.open(model) as tar:
        evaluation = json.load(tar.extractfile("evaluation.json"))
        meta = json.load(tar.extractfile("artifact.json"))
    xgb = meta["members"]["xgboost"]
    return {
        "instances": instances, "wall_s": round(wall, 1),
        "training_seconds": meta["training_seconds"],
        "peak_rss_mb": {h: int(mb) for h, mb in LINES["rss"].findall(text)},
        "net_bytes": {h: {"sent": int(s), "received": int(r)}
                      for h, s, r in LINES["net"].findall(text)},
        "rows_read": {int(r): int(n) for r, n, _ in LINES["rows"].findall(text)},
        "rounds_run": xgb["rounds_run"], "best_iteration": xgb["best_iteration"],
        "refit_rounds": xgb.get("refit", {}).get("rounds"),
        "test_rmsle": evaluation["models"]["xgboost"]["overall"]["rmsle"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="3m", help="a bench.scale_bench dataset (3m, 15m, ...)")
    p.add_argument("--instances", default="1,2")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--output", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    directory = Path(a.data_dir or tempfile.mkdtemp(prefix="dist-bench-")) / a.data
    directory.mkdir(parents=True, exist_ok=True)
    paths = write_data(a.data, str(directory), a.horizon)
    hp = {"horizon": str(a.horizon), "collective_timeout_s": "1800"}
    results = [run_job(Path(paths["history"]), directory, int(n), hp)
               for n in a.instances.split(",")]
    for r in results:
        print(json.dumps(r))
    if len(results) > 1:
        one = min(results, key=lambda r: r["instances"])
        many = max(results, key=lambda r: r["instances"])
        gap = many["test_rmsle"] - one["test_rmsle"]
        print(f"wall {many['wall_s'] / one['wall_s']:.2f}x, test RMSLE {one['test_rmsle']:.6f} "
              f"-> {many['test_rmsle']:.6f} ({gap:+.6f}, {gap / one['test_rmsle']:+.2%})")
        # Everything the collective carried (sketches, histograms, metrics, the gathers, the
        # refresh's sums) over the rounds boosted: an upper bound on a round's own bytes.
        sent = np.mean([v["sent"] for v in many["net_bytes"].values()])
        print(f"bytes sent per host per boosting round: {sent / max(many['rounds_run'], 1):,.0f}")
    if a.output:
        Path(a.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
