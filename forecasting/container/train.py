"""``train``: the SageMaker training entrypoint (``docker run IMAGE train``).

Reads hyperparameters and the ``train`` (and optional ``validation``) channel from /opt/ml
(or ``$OPT_ML``), writes the model to /opt/ml/model. On any failure it writes the reason to
/opt/ml/output/failure (SageMaker shows the first 1024 characters as FailureReason) and exits
non-zero: 2 for a user error, 1 for our bug, 3 for the platform, 143 when stopped by SIGTERM
(``forecasting.container.failure``).
"""

from __future__ import annotations

import logging
import sys

from forecasting import training
from forecasting.container.env import (
    SUPPORTED_CONTENT_TYPES,
    TRAIN_CHANNEL,
    VALIDATION_CHANNEL,
    TrainingEnv,
)
from forecasting.container.failure import run_job
from forecasting.errors import UserError


def run(env: TrainingEnv) -> None:
    """One training job in the given /opt/ml tree."""
    config = env.input_data_config()
    for channel, spec in config.items():
        ctype = (spec or {}).get("ContentType")
        if ctype and ctype.split(";")[0].strip() not in SUPPORTED_CONTENT_TYPES:
            raise UserError(f"channel '{channel}': content type {ctype!r} is not supported "
                            f"(use {', '.join(SUPPORTED_CONTENT_TYPES[:2])})")
    files = env.channel_files(TRAIN_CHANNEL)
    if not files:
        raise UserError(f"channel '{TRAIN_CHANNEL}' has no data files under "
                        f"{env.channel_dir(TRAIN_CHANNEL)}")
    validation = env.channel_files(VALIDATION_CHANNEL)
    extra = files[1:] + validation
    print(f"training on {len(files)} file(s) in channel '{TRAIN_CHANNEL}' and "
          f"{len(validation)} in '{VALIDATION_CHANNEL}'", flush=True)
    model = training.train(files[0], env.hyperparameters(), extra_sources=tuple(extra))
    model.save(env.model_dir)
    print(f"model written to {env.model_dir}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Console script ``train``; returns (and exits with) the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = TrainingEnv.from_environ()
    code = run_job(lambda: run(env), env.failure_file,
                   "the training job received SIGTERM (StopTrainingJob)")
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
