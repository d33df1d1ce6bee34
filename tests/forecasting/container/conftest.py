"""Helpers to run the ``train`` and ``serve`` console scripts as real processes (the /opt/ml
tree, port and HTTP helpers live in tests/sagemaker_job.py, shared with tests/containers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sagemaker_job import SAMPLE, free_port, make_opt_ml, post, wait_for_ping

__all__ = ["SAMPLE", "free_port", "make_opt_ml", "post", "run_train", "wait_for_ping"]

BIN = Path(sys.executable).parent


def run_train(root: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPT_ML": str(root)}
    return subprocess.run([str(BIN / "train")], env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)


@pytest.fixture(scope="session")
def trained_opt_ml(tmp_path_factory) -> Path:
    """One real `train` run on the bundled sample, shared by the serving tests."""
    root = make_opt_ml(tmp_path_factory.mktemp("job") / "opt_ml",
                       hyperparameters={"num_round": "80", "max_depth": "6"})
    result = run_train(root)
    assert result.returncode == 0, result.stderr + result.stdout
    return root
