"""One training run as the container contract describes it (docs/architecture.md, "Training runs
as a process"): the /opt/ml tree goes in, progress and metric lines come out, and the run ends
with the model directory or the failure file.

The local backend points a child process at the tree and the docker backend mounts it into a
container, but both must lay it out and read it back exactly as SageMaker and our container do;
this module is the one copy of that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from forecast_gateway.backends.base import (
    CONTENT_TYPES,
    TrainingListener,
    TrainingOutcome,
    TrainingSpec,
)
from forecast_gateway.backends.training_queue import QueuedJob
from forecasting import joblog
from forecasting.container.env import TRAIN_CHANNEL, TrainingEnv

#: How a backend words an exit without a model and without a failure file:
#: (exit code, last output line or "no output") -> reason.
DescribeExit = Callable[[int, str], str]


def run(job: QueuedJob, launch: Callable[[Path], subprocess.Popen], *, network_interface: str,
        describe_exit: DescribeExit) -> TrainingOutcome:
    """Build the job's tree, start its process with `launch(tree)` (output piped as text lines),
    forward its progress and metrics, and read the outcome once it exits."""
    spec = job.spec
    tree = prepare(spec, network_interface=network_interface)
    process = job.launch(lambda: launch(tree))
    if process is None:
        return job.stopped_outcome()
    job.listener.on_started(spec.job_id)
    assert process.stdout is not None
    last_line = follow(process.stdout, spec.job_dir / "train.log", spec.job_id, job.listener)
    code = process.wait()
    if job.stopping:
        return job.stopped_outcome()
    return read_outcome(tree, code, last_line, describe_exit)


def prepare(spec: TrainingSpec, *, network_interface: str) -> Path:
    """`<job_dir>/opt_ml`, made afresh as SageMaker lays it out: hyperparameters.json (all
    strings), inputdataconfig.json, resourceconfig.json and the data in the `train` channel."""
    tree = TrainingEnv(spec.job_dir / "opt_ml")
    if tree.root.exists():
        shutil.rmtree(tree.root)
    config_dir = tree.config_dir
    train_dir = tree.channel_dir(TRAIN_CHANNEL)
    for d in (config_dir, train_dir, tree.model_dir, tree.output_dir):
        d.mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(
        json.dumps({k: str(v) for k, v in spec.hyperparameters.items()}, indent=2, sort_keys=True))
    (config_dir / "inputdataconfig.json").write_text(json.dumps({
        TRAIN_CHANNEL: {"ContentType": CONTENT_TYPES[spec.data_format], "TrainingInputMode": "File",
                  "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    }, indent=2))
    (config_dir / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": network_interface},
        indent=2))
    target = train_dir / f"train.{spec.data_format}"
    try:
        os.link(spec.data_path, target)
    except OSError:
        shutil.copyfile(spec.data_path, target)
    return tree.root


def follow(lines: Iterable[str], log_path: Path, job_id: str, listener: TrainingListener) -> str:
    """Append every line to `log_path` and forward the progress and metric lines to the listener.
    Returns the last non-empty line ("" when there was none), for a failure reason."""
    last = ""
    with open(log_path, "a", encoding="utf-8") as out:
        for raw in lines:
            out.write(raw)
            line = raw.strip()
            if not line:
                continue
            last = line
            event = joblog.parse(line)
            if isinstance(event, joblog.Progress):
                listener.on_progress(job_id, event.stage, event.fraction)
            elif isinstance(event, joblog.Metric):
                listener.on_metric(job_id, event.name, event.value)
    return last


def read_outcome(opt_ml: Path, exit_code: int, last_line: str,
                 describe_exit: DescribeExit) -> TrainingOutcome:
    """Succeeded when the process exited 0 and left a model; otherwise failed, with the failure
    file's first `joblog.FAILURE_REASON_CHARS` characters or, without one, `describe_exit`'s
    words."""
    tree = TrainingEnv(opt_ml)
    model_dir = tree.model_dir
    if exit_code == 0 and model_dir.is_dir() and any(model_dir.iterdir()):
        return TrainingOutcome("succeeded", model_dir=model_dir)
    limit = joblog.FAILURE_REASON_CHARS
    reason = ""
    if tree.failure_file.exists():
        reason = tree.failure_file.read_text(errors="replace")[:limit].strip()
    if not reason:
        reason = describe_exit(exit_code, last_line or "no output")
    return TrainingOutcome("failed", failure_reason=reason[:limit])
