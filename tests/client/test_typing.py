"""The SDK's types as a user's type checker sees them: mypy (the `typed` extra) passes a script
that uses the SDK correctly and names each typo in one that does not; the SDK's own code passes
mypy too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import forecast_client
import pytest

pytestmark = pytest.mark.slow

#: The directory that holds the forecast_client package (an editable install hides it from mypy).
CLIENT_ROOT = Path(forecast_client.__file__).resolve().parent.parent

GOOD = '''
from forecast_client import ClientConfig, ForecastClient, ForecastClientError, pb

with ForecastClient(ClientConfig(target="127.0.0.1:50051")) as client:
    job: pb.TrainingJob = client.train("acme", dataset_id="ds-1", promote="never")
    final = client.wait_for_job("acme", job.job_id, timeout_s=60)
    decision: pb.PromotionDecision = final.promotion
    better: bool = decision.challenger_score <= decision.champion_score
    live: list[str] = [m.version for m in client.list_models("acme") if m.live]
    rmsle: float = client.get_metrics("acme").evaluations[0].overall.rmsle
    dataset: pb.Dataset = client.upload_dataset("acme", "train.csv")
    rows: int = dataset.rows
    try:
        client.set_live_model("acme", "v1")
    except ForecastClientError as err:
        print(err.code.name, err.details)
    values = client.predict("acme", date=["2017-08-16"], store_nbr=[1], family=["BEVERAGES"])
    total: float = float(values.sum())
    jobs: list[pb.TrainingJob] = client.list_jobs("acme", state=pb.JOB_STATE_FAILED)
    print(better, live, rmsle, rows, total, jobs)
'''

TYPOS = '''
from forecast_client import ForecastClient, pb

with ForecastClient(target="127.0.0.1:50051") as client:
    job = client.train("acme", dataset_id="ds-1")
    print(job.model_verison)
    client.train("acme", dataset_id="ds-1", promote="sometimes")
    pb.TrainRequest(retailer="acme", modle_kind="xgboost")
    rmsle: str = client.get_metrics("acme").evaluations[0].overall.rmsle
'''


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One mypy run, with the SDK's own settings (client/pyproject.toml), over the SDK and two
    user scripts; its error lines grouped by file (`forecast_client` for the SDK's)."""
    work = tmp_path_factory.mktemp("typing")
    (work / "good.py").write_text(textwrap.dedent(GOOD).lstrip())
    (work / "typos.py").write_text(textwrap.dedent(TYPOS).lstrip())
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(work / "cache"),
         "--config-file", str(CLIENT_ROOT / "pyproject.toml"),
         "forecast_client", str(work / "good.py"), str(work / "typos.py")],
        cwd=CLIENT_ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={"MYPYPATH": str(CLIENT_ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode in (0, 1) and not r.stderr, r.stdout + r.stderr
    errors: dict[str, list[str]] = {"forecast_client": [], "good.py": [], "typos.py": []}
    for line in r.stdout.splitlines():
        if ": error: " in line:
            path = line.split(":", 1)[0]
            key = Path(path).name if path.endswith(("good.py", "typos.py")) else "forecast_client"
            errors[key].append(line.removeprefix(str(work) + "/"))
    return errors


def test_a_users_typo_fails_mypy_and_correct_use_passes(mypy_run: dict[str, list[str]]) -> None:
    assert mypy_run["good.py"] == []
    assert mypy_run["typos.py"] == [
        ('typos.py:5: error: "TrainingJob" has no attribute "model_verison"; maybe '
        '"model_version"?  [attr-defined]'),
        ('typos.py:6: error: Argument "promote" to "train" of "ForecastClient" has incompatible '
        'type "Literal[\'sometimes\']"; expected "Literal[\'if_better\', \'always\', \'never\', \'shadow\']"  '
        '[arg-type]'),
        ('typos.py:7: error: Unexpected keyword argument "modle_kind" for "TrainRequest"; did you '
        'mean "model_kind"?  [call-arg]'),
        ('typos.py:8: error: Incompatible types in assignment (expression has type "float", '
        'variable has type "str")  [assignment]'),
    ]


def test_the_sdk_itself_passes_mypy(mypy_run: dict[str, list[str]]) -> None:
    assert mypy_run["forecast_client"] == []


def test_mypy_finds_the_sdk_in_the_projects_venv(tmp_path: Path) -> None:
    """As a user runs it: mypy from another directory, no MYPYPATH, no config. The venv's
    editable install of the client is a path entry mypy follows (make install), not an import
    hook it cannot see."""
    (tmp_path / "good.py").write_text(textwrap.dedent(GOOD).lstrip())
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
                        str(tmp_path / "cache"), "--strict", "good.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
