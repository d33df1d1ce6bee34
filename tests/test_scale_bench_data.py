"""The scale benchmarks' own promises: `bench.scale_bench --data-dir` keeps and reuses the
generated datasets, and an interrupted split leaves nothing a later run would reuse;
`bench.refit_bench` names an unknown candidate in one line."""

import subprocess
import sys

import pyarrow.parquet as pq

from bench import scale_bench


def test_a_kept_dataset_is_reused_and_a_partial_split_is_not(tmp_path, monkeypatch):
    first = scale_bench.write_data("small", str(tmp_path), horizon=16)
    history, test = (pq.read_table(first[k]) for k in ("history", "test"))
    assert history.num_rows + test.num_rows == first["rows"] == 2 * 50 * first["days"]
    assert test.num_rows == 2 * 50 * 16
    stamps = {k: (tmp_path / first[k]).stat().st_mtime_ns for k in ("all", "history", "test")}

    again = scale_bench.write_data("small", str(tmp_path), horizon=16)
    assert again == first
    assert stamps == {k: (tmp_path / first[k]).stat().st_mtime_ns for k in stamps}

    # Interrupted while splitting with another horizon: no file under the final names.
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq.ParquetWriter, "write_table", interrupted)
    try:
        scale_bench.write_data("small", str(tmp_path), horizon=7)
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "history_h7.parquet").exists()
    assert not (tmp_path / "test_h7.parquet").exists()


def test_refit_bench_names_an_unknown_candidate_in_one_line():
    done = subprocess.run([sys.executable, "-m", "bench.refit_bench", "--candidates",
                           "refresh,nope"], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "unknown candidates nope; choose from full, refresh" in done.stderr
    assert "Traceback" not in done.stderr
