"""What the docker-marked tests do without a Docker engine (docs/containers.md "Tests and CI"):
skipped and listed at the end of the run, or failed when CI=true. No Docker needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sagemaker_job import REPO

# One docker test that needs only the engine and an image.
TEST = "tests/containers/test_training_image.py::test_image_runs_train_from_path"


def run_without_docker(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # no `docker` command on it
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize("ci", [None, "false"])
def test_skipped_and_listed_outside_ci(tmp_path: Path, ci: str | None) -> None:
    proc = run_without_docker(tmp_path, ci)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout
    assert "docker test(s) left out" in proc.stdout
    assert "the docker command is not installed" in proc.stdout


def test_failed_when_ci_is_true(tmp_path: Path) -> None:
    proc = run_without_docker(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 failed" in proc.stdout or "1 error" in proc.stdout
    assert "docker tests are required when CI=true" in proc.stdout
