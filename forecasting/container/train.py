"""``train``: the SageMaker training entrypoint (``docker run IMAGE train``).

Reads hyperparameters and the ``train`` (and optional ``validation``) channel from /opt/ml
(or ``$OPT_ML``), writes the model to /opt/ml/model. On any failure it writes the reason to
/opt/ml/output/failure (SageMaker shows the first 1024 characters as FailureReason) and exits
non-zero: 2 for a user error, 1 for our bug, 3 for the platform, 143 when stopped by SIGTERM
(``forecasting.container.failure``).

When ``resourceconfig.json`` lists several hosts, they train one model together on XGBoost's
collective (``forecasting.distributed``): each reads its shard of the channels, the first host
in sorted order writes the artifact, the others exit 0 leaving /opt/ml/model alone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from forecasting import distributed, training
from forecasting.container.env import (
    SUPPORTED_CONTENT_TYPES,
    TRAIN_CHANNEL,
    VALIDATION_CHANNEL,
    TrainingEnv,
)
from forecasting.container.failure import run_job
from forecasting.errors import UserError
from forecasting.hyperparameters import parse

STOPPED = "the training job received SIGTERM (StopTrainingJob)"
STOPPED_PRIMARY = ("the training job received SIGTERM (StopTrainingJob, or the platform "
                   "stopping this host because another host of the job exited)")


def run(env: TrainingEnv, cluster: distributed.Cluster | None = None) -> None:
    """One training job in the given /opt/ml tree (this host's part of it)."""
    cluster = cluster or distributed.Cluster.from_resource_config(env.resource_config())
    config = env.input_data_config()
    for channel, spec in config.items():
        ctype = (spec or {}).get("ContentType")
        if ctype and ctype.split(";")[0].strip() not in SUPPORTED_CONTENT_TYPES:
            raise UserError(f"channel '{channel}': content type {ctype!r} is not supported "
                            f"(use {', '.join(SUPPORTED_CONTENT_TYPES[:2])})")
    hp = parse(env.hyperparameters())
    files = cluster.files_for(env.channel_files(TRAIN_CHANNEL), env.distribution(TRAIN_CHANNEL))
    validation = cluster.files_for(env.channel_files(VALIDATION_CHANNEL),
                                   env.distribution(VALIDATION_CHANNEL))
    with distributed.collective(cluster, hp.collective_timeout_s):
        shares = distributed.allgather(len(files))
        if not all(shares):
            empty = [cluster.hosts[r] for r, n in enumerate(shares) if not n]
            raise UserError(f"channel '{TRAIN_CHANNEL}' has no data files for host(s) "
                            f"{', '.join(empty)} of {cluster.size}: shard the data by series "
                            f"into at least {cluster.size} files")
        print(f"training on {len(files)} file(s) in channel '{TRAIN_CHANNEL}' and "
              f"{len(validation)} in '{VALIDATION_CHANNEL}'"
              + (f" (host {cluster.current}, {cluster.rank + 1} of {cluster.size})"
                 if cluster.distributed else ""), flush=True)
        extra = files[1:] + validation
        model = training.train(files[0], hp, extra_sources=tuple(extra))
        if cluster.is_primary:
            model.save(env.model_dir)
            print(f"model written to {env.model_dir}", flush=True)
        else:
            print(f"host {cluster.current} done; {cluster.primary} writes the model", flush=True)
        print(f"host {cluster.current}: peak RSS {_peak_rss_mb()} MB", flush=True)
        if cluster.distributed:
            distributed.barrier()   # no host leaves before the artifact is written: local
            # mode stops every container when one exits, and the job's work is done now, so
            # that SIGTERM is no failure.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _peak_rss_mb() -> int | None:
    """This process's peak resident memory (VmHWM), in MB; None where /proc has none."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return None


def main(argv: list[str] | None = None) -> int:
    """Console script ``train``; returns (and exits with) the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = TrainingEnv.from_environ()
    try:
        cluster = distributed.Cluster.from_resource_config(env.resource_config())
    except Exception:  # noqa: BLE001 - run() reads it again and records the failure
        cluster = distributed.Cluster()
    # On several hosts SIGTERM also comes when another host exited (local mode stops every
    # container then): only the primary records it, so the failed host's reason is the job's.
    stopped = (STOPPED if not cluster.distributed else
               STOPPED_PRIMARY if cluster.is_primary else None)
    code = run_job(lambda: run(env, cluster), env.failure_file, stopped)
    if cluster.distributed:
        # Skip the interpreter's teardown: after a broken collective, XGBoost's tracker and
        # communicator objects can crash in their destructors (exit 139 instead of ours).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
