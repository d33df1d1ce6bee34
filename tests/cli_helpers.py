"""Helpers of the CLI tests: the `forecast` CLI as a real subprocess, and what every one of its
errors must look like."""

from __future__ import annotations

import os
import re
import subprocess
import sys

#: What a user-facing message must not contain: API method names, status code names,
#: exception class names, internal stage names.
_NOT_USER_WORDS = re.compile(
    r"\b(UploadDataset|PredictStream|SetLiveModel|GetMetrics|ListModels|ListTrainingJobs"
    r"|WatchTrainingJob|GetTrainingJob|CancelTrainingJob|ForecastRequest|TurnoverRequest)\b"
    r"|\(Train\)|\b(CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS"
    r"|PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE"
    r"|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED|JOB_STATE_\w+"
    r"|PROMOTION_POLICY_\w+)\b|\b\w+(Error|Exception):|Traceback|\brefit_\w+")

def run_forecast(*args: str, target: str | None = None, stdin: str | None = None,
                 env: dict[str, str] | None = None, timeout: float = 300
                 ) -> subprocess.CompletedProcess:
    """`python -m forecast_client.cli ARGS` with FORECAST_TARGET=target; text in and out."""
    full_env = {**os.environ, **(env or {})}
    if target:
        full_env["FORECAST_TARGET"] = target
    return subprocess.run([sys.executable, "-m", "forecast_client.cli", *args], env=full_env,
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)


def assert_one_line_error(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """The run failed with exit `code` and one line on stderr, in the user's words, naming
    `words`."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("forecast: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert not _NOT_USER_WORDS.search(r.stderr), r.stderr
    for word in words:
        assert word in r.stderr, (word, r.stderr)
