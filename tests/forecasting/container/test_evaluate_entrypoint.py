"""`evaluate` as a real process on a /opt/ml/processing tree: the splits `clean` wrote, a model
trained on train + validation (as the pipeline's Train step does) packed as model.tar.gz."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sagemaker_job import SAMPLE, run_processing

from forecasting import training
from forecasting.container.env import ProcessingEnv

FAST_HP = {"num_round": "60", "early_stopping_rounds": "10", "max_depth": "6"}


def pack(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as SageMaker writes it: the model directory's files at the archive's root."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def clean_and_train(root: Path, raw: Path, horizon: str = "16") -> tuple[ProcessingEnv, Path]:
    """Run `clean` on `raw`, train on its train + validation splits; returns the tree (with the
    test split in the `test` input) and model.tar.gz."""
    env = ProcessingEnv(root)
    env.raw_dir.mkdir(parents=True)
    shutil.copy(raw, env.raw_dir / raw.name)
    result = run_processing("clean", root, "--horizon", horizon)
    assert result.returncode == 0, result.stderr
    split = {name: env.split_dir(name) / f"{name}.parquet" for name in ("train", "validation",
                                                                         "test")}
    model = training.train(split["train"], {**FAST_HP, "horizon": horizon},
                           extra_sources=(split["validation"],), log=lambda _: None)
    model_dir = model.save(root.parent / "model")
    env.test_input_dir.mkdir(parents=True)
    shutil.copy(split["test"], env.test_input_dir / "test.parquet")
    return env, pack(model_dir, root.parent / "model.tar.gz")


def with_model(env: ProcessingEnv, archive: Path) -> ProcessingEnv:
    shutil.rmtree(env.model_input_dir, ignore_errors=True)
    env.model_input_dir.mkdir(parents=True)
    shutil.copy(archive, env.model_input_dir / "model.tar.gz")
    return env


def evaluation_of(env: ProcessingEnv) -> dict:
    return json.loads((env.evaluation_dir / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[ProcessingEnv, Path]:
    return clean_and_train(tmp_path_factory.mktemp("evaluate") / "opt_ml", SAMPLE)


@pytest.fixture(scope="module")
def evaluated(sample_run) -> dict:
    env, archive = sample_run
    result = run_processing("evaluate", with_model(env, archive).root)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "xgboost.test.rmsle=" in result.stdout and "baseline.test.rmsle=" in result.stdout
    return evaluation_of(env)


def test_scores_the_test_days_after_the_models_history(sample_run, evaluated):
    env, _ = sample_run
    test = pd.read_parquet(env.test_input_dir / "test.parquet")
    assert evaluated["test_start"] == str(test["date"].min().date())
    assert evaluated["test_end"] == str(test["date"].max().date())
    assert evaluated["horizon"] == 16 and evaluated["final_model"] == "xgboost"
    summary = evaluated["summary"]
    assert summary["model_rmsle"] == evaluated["models"]["xgboost"]["overall"]["rmsle"]
    assert summary["baseline_rmsle"] == evaluated["baseline"]["overall"]["rmsle"]
    assert summary["beats_baseline"] == (summary["model_rmsle"] < summary["baseline_rmsle"])
    assert set(evaluated["models"]["xgboost"]["per_family"]) == set(
        evaluated["baseline"]["per_family"])
    assert evaluated["series_not_in_model"] == 0 and not env.failure_file.exists()


def test_baseline_repeats_the_last_week_before_the_test(sample_run, evaluated):
    """The seasonal-naive RMSLE recomputed from the splits themselves."""
    env, _ = sample_run
    frames = [pd.read_parquet(env.split_dir(n) / f"{n}.parquet") for n in ("train", "validation")]
    known = pd.concat(frames)
    test = pd.read_parquet(env.test_input_dir / "test.parquet")
    origin = known["date"].max()
    week = known[known["date"] > origin - pd.Timedelta(days=7)]
    # Scored series: those that sold by the origin (what the model keeps history for).
    sold = known.groupby(["store_nbr", "family"])["sales"].max()
    series = sold[sold > 0].index
    assert len(series) == evaluated["series"]
    errors = []
    for store, family in series:
        last = week[(week["store_nbr"] == store) & (week["family"] == family)]
        by_weekday = {d.dayofweek: s for d, s in zip(last["date"], last["sales"])}
        rows = test[(test["store_nbr"] == store) & (test["family"] == family)]
        actual = dict(zip(rows["date"], rows["sales"]))
        for h in range(1, 17):
            day = origin + pd.Timedelta(days=h)
            forecast = by_weekday.get(day.dayofweek, 0.0)
            errors.append(np.log1p(forecast) - np.log1p(actual.get(day, 0.0)))
    expected = float(np.sqrt(np.mean(np.square(errors))))
    assert evaluated["baseline"]["overall"]["rmsle"] == pytest.approx(expected, abs=1e-6)


def test_an_extracted_model_scores_the_same(sample_run, evaluated, tmp_path):
    env, archive = sample_run
    tree = ProcessingEnv(tmp_path / "opt_ml")
    shutil.copytree(env.test_input_dir, tree.test_input_dir)
    with tarfile.open(archive) as tar:
        tar.extractall(tree.model_input_dir)
    result = run_processing("evaluate", tree.root)
    assert result.returncode == 0, result.stderr
    assert evaluation_of(tree)["summary"] == evaluated["summary"]


def test_a_model_that_cannot_beat_an_exact_weekly_pattern(tmp_path):
    """Sales that repeat every week exactly: the seasonal-naive baseline is perfect."""
    days = pd.date_range("2017-01-01", periods=100, freq="D")
    pattern = np.array([5, 7, 9, 11, 13, 30, 20], dtype=float)
    rows = [(d.strftime("%Y-%m-%d"), store, family, level * store * pattern[d.dayofweek], 0)
            for store in (1, 2) for family, level in (("BEVERAGES", 10.0), ("GROCERY I", 3.0))
            for d in days]
    raw = tmp_path / "weekly.csv"
    pd.DataFrame(rows, columns=["date", "store_nbr", "family", "sales", "onpromotion"]).to_csv(
        raw, index=False)
    env, archive = clean_and_train(tmp_path / "opt_ml", raw)
    result = run_processing("evaluate", with_model(env, archive).root)
    assert result.returncode == 0, result.stderr
    summary = evaluation_of(env)["summary"]
    assert summary["baseline_rmsle"] == 0.0
    assert summary["model_rmsle"] > 0 and summary["beats_baseline"] is False
    assert "does not beat the baseline" in result.stdout


def test_a_test_split_inside_the_models_history_is_a_client_error(sample_run, tmp_path):
    env, archive = sample_run
    tree = with_model(ProcessingEnv(tmp_path / "opt_ml"), archive)
    tree.test_input_dir.mkdir(parents=True)
    shutil.copy(env.split_dir("validation") / "validation.parquet", tree.test_input_dir)
    result = run_processing("evaluate", tree.root)
    assert result.returncode == 2
    assert tree.failure_file.read_text().startswith(
        "ClientError: column 'date': the test split must start after the model's history")


def _archive_with(tmp_path: Path, name: str, data: bytes) -> Path:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


@pytest.mark.parametrize("make, expected", [
    (lambda p: _archive_with(p, "../escape.json", b"{}"),
     "ClientError: model.tar.gz: member '../escape.json' points outside the archive"),
    (lambda p: _archive_with(p, "notes.txt", b"hello"),
     "ClientError: model.tar.gz holds no model (no artifact.json inside)"),
    (lambda p: (p / "model.tar.gz").write_bytes(b"not a tar") and p / "model.tar.gz",
     "ClientError: model.tar.gz is not a readable tar.gz archive"),
    (lambda p: None, ("ClientError: input 'model' must hold one model.tar.gz or an extracted "
                     "model (found: nothing")),
])
def test_unusable_model_inputs_are_client_errors(sample_run, tmp_path, make, expected):
    env, _ = sample_run
    tree = ProcessingEnv(tmp_path / "opt_ml")
    shutil.copytree(env.test_input_dir, tree.test_input_dir)
    tree.model_input_dir.mkdir(parents=True)
    archive = make(tmp_path)
    if archive is not None:
        shutil.move(archive, tree.model_input_dir / "model.tar.gz")
    result = run_processing("evaluate", tree.root)
    assert result.returncode == 2, result.stderr
    assert tree.failure_file.read_text().startswith(expected)
    assert not (tmp_path / "opt_ml" / "processing" / "input" / "escape.json").exists()
    assert not (tree.evaluation_dir / "evaluation.json").exists()


def test_arguments_are_refused(sample_run, tmp_path):
    env, archive = sample_run
    tree = with_model(ProcessingEnv(tmp_path / "opt_ml"), archive)
    shutil.copytree(env.test_input_dir, tree.test_input_dir)
    result = run_processing("evaluate", tree.root, "--fast")
    assert result.returncode == 2
    assert tree.failure_file.read_text() == "ClientError: evaluate takes no arguments, got '--fast'"
