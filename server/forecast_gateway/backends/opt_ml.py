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
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from forecast_gateway.backends.base import (
    CONTENT_TYPES,
    FAILURE_CHARS,
    TrainingListener,
    TrainingOutcome,
    TrainingSpec,
)
from forecast_gateway.backends.training_queue import QueuedJob

PROGRESS_RE = re.compile(r"^progress stage=(?P<stage>\S+) fraction=(?P<fraction>[-+0-9.eE]+)\s*$")
METRIC_RE = re.compile(r"^(?P<name>[A-Za-z][\w-]*(?:\.[\w-]+)+)=(?P<value>[-+0-9.eE]+|nan|inf|-inf)\s*$")

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
    opt_ml = spec.job_dir / "opt_ml"
    if opt_ml.exists():
        shutil.rmtree(opt_ml)
    config_dir = opt_ml / "input" / "config"
    train_dir = opt_ml / "input" / "data" / "train"
    for d in (config_dir, train_dir, opt_ml / "model", opt_ml / "output"):
        d.mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(
        json.dumps({k: str(v) for k, v in spec.hyperparameters.items()}, indent=2, sort_keys=True))
    (config_dir / "inputdataconfig.json").write_text(json.dumps({
        "train": {"ContentType": CONTENT_TYPES[spec.data_format], "TrainingInputMode": "File",
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
    return opt_ml


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
            if m := PROGRESS_RE.match(line):
                try:
                    fraction = min(1.0, max(0.0, float(m["fraction"])))
                except ValueError:
                    continue
                listener.on_progress(job_id, m["stage"], fraction)
            elif m := METRIC_RE.match(line):
                try:
                    value = float(m["value"])
                except ValueError:
                    continue
                listener.on_metric(job_id, m["name"], value)
    return last


def read_outcome(opt_ml: Path, exit_code: int, last_line: str,
                 describe_exit: DescribeExit) -> TrainingOutcome:
    """Succeeded when the process exited 0 and left a model; otherwise failed, with the failure
    file's first `FAILURE_CHARS` characters or, without one, `describe_exit`'s words."""
    model_dir = opt_ml / "model"
    if exit_code == 0 and model_dir.is_dir() and any(model_dir.iterdir()):
        return TrainingOutcome("succeeded", model_dir=model_dir)
    failure = opt_ml / "output" / "failure"
    reason = ""
    if failure.exists():
        reason = failure.read_text(errors="replace")[:FAILURE_CHARS].strip()
    if not reason:
        reason = describe_exit(exit_code, last_line or "no output")
    return TrainingOutcome("failed", failure_reason=reason[:FAILURE_CHARS])
