"""``train``: the SageMaker training entrypoint (``docker run IMAGE train``).

Reads hyperparameters and the ``train`` (and optional ``validation``) channel from /opt/ml
(or ``$OPT_ML``), writes the model to /opt/ml/model. On any failure it writes the reason to
/opt/ml/output/failure (SageMaker shows the first 1024 characters as FailureReason) and exits
non-zero: 2 for a user error, 1 for our bug, 3 for the platform, 143 when stopped by SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback

from forecasting import training
from forecasting.container.env import (
    SUPPORTED_CONTENT_TYPES,
    TRAIN_CHANNEL,
    VALIDATION_CHANNEL,
    TrainingEnv,
)
from forecasting.errors import ForecastingError, UserError
from forecasting.joblog import FAILURE_REASON_CHARS

EXIT_CODES = {"user": 2, "algorithm": 1, "platform": 3}


class Stopped(BaseException):
    """SIGTERM arrived (StopTrainingJob): stop at once, record why."""


def _on_sigterm(signum, frame):
    raise Stopped()


def write_failure(env: TrainingEnv, message: str) -> None:
    try:
        env.output_dir.mkdir(parents=True, exist_ok=True)
        env.failure_file.write_text(message[:FAILURE_REASON_CHARS * 4], encoding="utf-8")
    except OSError as exc:
        print(f"could not write {env.failure_file}: {exc}", file=sys.stderr, flush=True)


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
    signal.signal(signal.SIGTERM, _on_sigterm)
    env = TrainingEnv.from_environ()
    code = 0
    try:
        run(env)
    except Stopped:
        write_failure(env, "Stopped: the training job received SIGTERM (StopTrainingJob)")
        code = 143
    except ForecastingError as exc:
        kind = exc.kind
        label = {"user": "ClientError", "platform": "PlatformError"}.get(kind, "AlgorithmError")
        write_failure(env, f"{label}: {exc}")
        print(f"{label}: {exc}", file=sys.stderr, flush=True)
        if not isinstance(exc, UserError):
            traceback.print_exc()
        code = EXIT_CODES.get(kind, 1)
    except MemoryError:
        write_failure(env, "PlatformError: out of memory")
        code = EXIT_CODES["platform"]
    except OSError as exc:
        write_failure(env, f"PlatformError: {exc}")
        traceback.print_exc()
        code = EXIT_CODES["platform"]
    except Exception as exc:  # noqa: BLE001 - the top of the process: record every failure
        write_failure(env, f"AlgorithmError: unexpected {type(exc).__name__}: {exc}")
        traceback.print_exc()
        code = EXIT_CODES["algorithm"]
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
