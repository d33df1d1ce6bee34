"""The top of every container entrypoint (``train``, ``clean``, ``evaluate``): run the job, and on
any failure write the reason where SageMaker reads it and exit non-zero.

Exit codes follow the error taxonomy (``forecasting.errors``): 2 for a user error, 1 for our bug,
3 for the platform, 143 when stopped by SIGTERM (StopTrainingJob, StopProcessingJob). The
reason file is ``/opt/ml/output/failure`` for training (FailureReason) and
``/opt/ml/output/message`` for processing (ExitMessage); SageMaker keeps the first 1024
characters, so the label and message come first.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from forecasting.errors import ForecastingError, UserError
from forecasting.joblog import FAILURE_REASON_CHARS

EXIT_CODES = {"user": 2, "algorithm": 1, "platform": 3}
STOPPED_EXIT_CODE = 143
LABELS = {"user": "ClientError", "platform": "PlatformError"}   # else AlgorithmError


class Stopped(BaseException):
    """SIGTERM arrived: stop at once, record why."""


def _on_sigterm(signum, frame):
    raise Stopped()


def write_failure(path: Path, message: str) -> None:
    """The reason file; a failure to write it is printed, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message[:FAILURE_REASON_CHARS * 4], encoding="utf-8")
    except OSError as exc:
        print(f"could not write {path}: {exc}", file=sys.stderr, flush=True)


def run_job(job: Callable[[], None], failure_file: Path, stopped_reason: str | None) -> int:
    """Run ``job`` with a SIGTERM handler; return its exit code after recording any failure
    (a SIGTERM is recorded only with a ``stopped_reason``).

    The process may be PID 1 in its container, which ignores SIGTERM without a handler.
    """
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        job()
    except Stopped:
        if stopped_reason:
            write_failure(failure_file, f"Stopped: {stopped_reason}")
        return STOPPED_EXIT_CODE
    except ForecastingError as exc:
        label = LABELS.get(exc.kind, "AlgorithmError")
        write_failure(failure_file, f"{label}: {exc}")
        print(f"{label}: {exc}", file=sys.stderr, flush=True)
        if not isinstance(exc, UserError):
            traceback.print_exc()
        return EXIT_CODES.get(exc.kind, 1)
    except MemoryError:
        write_failure(failure_file, "PlatformError: out of memory")
        return EXIT_CODES["platform"]
    except OSError as exc:
        write_failure(failure_file, f"PlatformError: {exc}")
        traceback.print_exc()
        return EXIT_CODES["platform"]
    except Exception as exc:  # noqa: BLE001 - the top of the process: record every failure
        write_failure(failure_file, f"AlgorithmError: unexpected {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return EXIT_CODES["algorithm"]
    return 0
