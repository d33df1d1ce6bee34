"""Fixtures for the tests that run the real images (marker ``docker``).

These tests need a Docker engine and the images from ``make images``. With ``CI=true`` a missing
engine or image is a test *failure* (the container contract is required in CI); elsewhere the
tests are skipped with the reason, and the end of the run lists what was left out.

Every container a test starts is removed at teardown (``docker rm -f``), passed or failed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import IMAGES, QUICK_HYPERPARAMETERS, Containers, docker, unavailable
from sagemaker_job import make_opt_ml


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The engine's version; skips (fails in CI) when there is no engine."""
    if shutil.which("docker") is None:
        unavailable("the docker command is not installed (apt-get install docker.io)")
    try:
        proc = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        unavailable("`docker info` did not answer within 30 s")
    if proc.returncode != 0:
        unavailable(f"no Docker engine answers ({proc.stderr.strip()[:200]}); start dockerd")
    return proc.stdout.strip()


def _image(docker_engine: str, name: str) -> str:
    image = IMAGES[name]
    if docker("image", "inspect", image, check=False).returncode != 0:
        unavailable(f"image {image} is not built; run `make images`")
    return image


@pytest.fixture(scope="session")
def training_image(docker_engine: str) -> str:
    return _image(docker_engine, "training")


@pytest.fixture(scope="session")
def inference_image(docker_engine: str) -> str:
    return _image(docker_engine, "inference")


@pytest.fixture(scope="session")
def gateway_image(docker_engine: str) -> str:
    return _image(docker_engine, "gateway")


def _removed_at_teardown() -> Iterator[Containers]:
    c = Containers([])
    try:
        yield c
    finally:
        c.remove_all()


@pytest.fixture
def containers(docker_engine: str) -> Iterator[Containers]:
    """The test's containers, removed when it ends."""
    yield from _removed_at_teardown()


@pytest.fixture(scope="session")
def session_containers(docker_engine: str) -> Iterator[Containers]:
    """Containers shared by the session (the trained model's), removed when it ends."""
    yield from _removed_at_teardown()


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, training_image: str,
                  session_containers: Containers, sample_csv: Path) -> dict:
    """One real training run of the training image on the sample data (shared by the tests)."""
    root = make_opt_ml(tmp_path_factory.mktemp("train-ok") / "opt_ml", sample_csv,
                       QUICK_HYPERPARAMETERS)
    proc = session_containers.run(training_image, "train",
                                  options=("-v", f"{root}:/opt/ml", "--cpus", "2"))
    return {"root": root, "proc": proc}


@pytest.fixture(scope="session")
def model_dir(trained_model: dict) -> Path:
    """The trained model's artifact directory (fails when the training image failed)."""
    proc = trained_model["proc"]
    if proc.returncode != 0:
        pytest.fail(f"the training image failed, nothing to serve:\n{proc.stderr[-2000:]}",
                    pytrace=False)
    return trained_model["root"] / "model"


# -- reporting -----------------------------------------------------------------------------------

def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say which docker tests this run left out, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "docker" in getattr(r, "keywords", {})]
    if not skipped:
        return
    reasons = sorted({str(r.longrepr[2]).removeprefix("Skipped: ")
                      for r in skipped if isinstance(r.longrepr, tuple)})
    terminalreporter.write_sep("=", f"{len(skipped)} docker test(s) left out", yellow=True)
    for reason in reasons:
        terminalreporter.write_line(f"  reason: {reason}")
    terminalreporter.write_line("  These run the real container images. To run them: start "
                                "dockerd, `make images`, then `make test` (CI=true makes them "
                                "required).")
