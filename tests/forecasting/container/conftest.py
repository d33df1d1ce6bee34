"""The shared `train` run of the in-process container tests (the /opt/ml tree, `run_train`,
port and HTTP helpers live in tests/sagemaker_job.py, shared with tests/containers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagemaker_job import make_opt_ml, run_train


@pytest.fixture(scope="session")
def trained_opt_ml(tmp_path_factory) -> Path:
    """One real `train` run on the bundled sample, shared by the serving tests."""
    root = make_opt_ml(tmp_path_factory.mktemp("job") / "opt_ml",
                       hyperparameters={"num_round": "80", "max_depth": "6"})
    result = run_train(root)
    assert result.returncode == 0, result.stderr + result.stdout
    return root
