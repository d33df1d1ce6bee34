"""`clean` as a real process on a /opt/ml/processing tree (OPT_ML moves the root)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sagemaker_job import SAMPLE, run_processing

from forecasting.container.env import ProcessingEnv
from forecasting.schema import load_history


def make_tree(root: Path, files: dict[str, bytes | Path]) -> ProcessingEnv:
    """A processing tree with the given files in the `raw` input."""
    env = ProcessingEnv(root)
    env.raw_dir.mkdir(parents=True)
    for name, data in files.items():
        (env.raw_dir / name).write_bytes(data.read_bytes() if isinstance(data, Path) else data)
    return env


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory) -> ProcessingEnv:
    env = make_tree(tmp_path_factory.mktemp("clean") / "opt_ml", {"train.csv": SAMPLE})
    result = run_processing("clean", env.root, "--horizon", "16")
    assert result.returncode == 0, result.stderr + result.stdout
    return env


def read_split(env: ProcessingEnv, name: str) -> pd.DataFrame:
    return pd.read_parquet(env.split_dir(name) / f"{name}.parquet")


def test_splits_cut_the_validated_rows_by_date(cleaned):
    source, _ = load_history(SAMPLE)
    splits = {name: read_split(cleaned, name) for name in ("train", "validation", "test")}
    dates = {name: pd.to_datetime(frame["date"]) for name, frame in splits.items()}
    last = source["date"].max()
    assert dates["test"].min() == last - pd.Timedelta(days=15) and dates["test"].max() == last
    assert dates["validation"].min() == last - pd.Timedelta(days=31)
    assert dates["validation"].max() == last - pd.Timedelta(days=16)
    assert dates["train"].max() == last - pd.Timedelta(days=32)
    assert list(splits["train"].columns) == ["date", "store_nbr", "family", "sales",
                                             "onpromotion"]
    together = pd.concat(splits.values(), ignore_index=True)
    key = ["date", "store_nbr", "family"]
    expected = source[key + ["sales", "onpromotion"]].sort_values(key).reset_index(drop=True)
    got = together.sort_values(key).reset_index(drop=True)
    got["family"] = got["family"].astype(str)
    expected["family"] = expected["family"].astype(str)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_cleaning_report_counts_the_repairs_and_the_cut(cleaned):
    report = json.loads((cleaned.report_dir / "cleaning_report.json").read_text())
    assert [r["file"] for r in report["schema"]] == ["train.csv"]
    assert report["schema"][0]["rows_read"] == report["rows_in"]
    assert report["rows_in"] == len(load_history(SAMPLE)[0])
    assert report["never_selling_series"] >= 0 and report["filled_missing_days"] >= 0
    split = report["split"]
    assert split["horizon"] == 16
    assert (split["train_end"], split["validation_end"]) == (split["train"]["end"],
                                                             split["validation"]["end"])
    assert sum(split[name]["rows"] for name in ("train", "validation", "test")) == \
        report["rows_in"]
    assert not cleaned.failure_file.exists()


def test_files_of_both_formats_are_read_together(tmp_path):
    source, _ = load_history(SAMPLE)
    early = source[source["date"] < "2016-06-01"]
    late = source[source["date"] >= "2016-06-01"].copy()
    late["date"] = late["date"].dt.strftime("%Y-%m-%d")
    env = make_tree(tmp_path / "opt_ml", {"a.parquet": b"", "b.csv": late.to_csv(
        index=False).encode()})
    early.to_parquet(env.raw_dir / "a.parquet", index=False)
    result = run_processing("clean", env.root, "--horizon", "7")
    assert result.returncode == 0, result.stderr
    report = json.loads((env.report_dir / "cleaning_report.json").read_text())
    assert [r["file"] for r in report["schema"]] == ["a.parquet", "b.csv"]
    assert report["rows_in"] == len(source) and report["split"]["horizon"] == 7


def test_keys_repeated_across_files_are_a_client_error(tmp_path):
    env = make_tree(tmp_path / "opt_ml", {"a.csv": SAMPLE, "b.csv": SAMPLE})
    result = run_processing("clean", env.root)
    assert result.returncode == 2
    assert env.failure_file.read_text().startswith(
        "ClientError: column 'date, store_nbr, family': each (date, store_nbr, family) may "
        "appear only once")


def test_bad_rows_fail_naming_the_file_and_rows(tmp_path):
    env = make_tree(tmp_path / "opt_ml", {"upload.csv": b"date,store_nbr,family,sales\n"
                                                       b"2017-01-01,1,A,-3\n"})
    result = run_processing("clean", env.root)
    assert result.returncode == 2
    assert env.failure_file.read_text() == (
        "ClientError: upload.csv: column 'sales': must be >= 0 (rows 1)")
    assert "Traceback" not in result.stderr
    assert not env.split_dir("train").exists()


def test_too_short_a_history_names_the_days_needed(tmp_path):
    source, _ = load_history(SAMPLE)
    short = source[source["date"] >= source["date"].max() - pd.Timedelta(days=60)].copy()
    short["date"] = short["date"].dt.strftime("%Y-%m-%d")
    env = make_tree(tmp_path / "opt_ml", {"s.csv": short.to_csv(index=False).encode()})
    result = run_processing("clean", env.root, "--horizon", "16")
    assert result.returncode == 2
    message = env.failure_file.read_text()
    assert message.startswith("ClientError: column 'date': history covers 61 days; the "
                              "pipeline holds out the last 16 as its test")
    assert "needs at least 60" in message


@pytest.mark.parametrize("args, expected", [
    (("--horizon", "abc"), "hyperparameter 'horizon': must be an integer, got 'abc'"),
    (("--horizon", "0"), "hyperparameter 'horizon'"),
    (("--depth", "3"), "clean: unrecognized arguments: --depth 3"),
])
def test_bad_arguments_are_client_errors(tmp_path, args, expected):
    env = make_tree(tmp_path / "opt_ml", {"train.csv": SAMPLE})
    result = run_processing("clean", env.root, *args)
    assert result.returncode == 2
    assert expected in env.failure_file.read_text()


def test_no_raw_files_is_a_client_error(tmp_path):
    env = make_tree(tmp_path / "opt_ml", {})
    result = run_processing("clean", env.root)
    assert result.returncode == 2
    assert "input 'raw' has no data files" in env.failure_file.read_text()


def test_shards_hold_whole_series_balanced_and_the_same_in_every_split(tmp_path):
    """`--shards 2` (a training job on two instances): each split is two files, a series is in
    one of them, the same one in every split, and the shards are balanced by rows."""
    env = make_tree(tmp_path / "opt_ml", {"train.csv": SAMPLE})
    result = run_processing("clean", env.root, "--horizon", "16", "--shards", "2")
    assert result.returncode == 0, result.stderr + result.stdout
    home: dict = {}
    for name in ("train", "validation", "test"):
        files = sorted(p.name for p in env.split_dir(name).iterdir())
        assert files == ["part-00000.parquet", "part-00001.parquet"]
        parts = [pd.read_parquet(env.split_dir(name) / f) for f in files]
        for i, part in enumerate(parts):
            for key in set(zip(part["store_nbr"], part["family"])):
                assert home.setdefault(key, i) == i, (name, key)
        sizes = [len(p) for p in parts]
        assert abs(sizes[0] - sizes[1]) <= 0.05 * sum(sizes), (name, sizes)
    source, _ = load_history(SAMPLE)
    assert len(home) == source.groupby(["store_nbr", "family"], observed=True).ngroups


def test_a_bad_shard_count_is_a_user_error(tmp_path):
    env = make_tree(tmp_path / "opt_ml", {"train.csv": SAMPLE})
    result = run_processing("clean", env.root, "--shards", "zero")
    assert result.returncode == 2
    assert (env.root / "output" / "message").read_text() == (
        "ClientError: clean: --shards must be an integer from 1 to 10000, got 'zero'")
