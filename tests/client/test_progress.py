"""The progress display: stages in words, elapsed time and an ETA, and no bar stuck at 100%."""

from __future__ import annotations

import io

import pytest
from forecast_client import pb
from forecast_client.progress import JobProgress, ProgressLine, clock, seconds_left, stage_words


def test_stage_words_never_show_internal_names() -> None:
    assert stage_words("fit") == "training XGBoost"
    assert stage_words("refit_fit") == "refitting on all history: training XGBoost"
    assert stage_words("refit_lstm_fit") == "refitting on all history: training the LSTM"
    assert stage_words("done") == "loading model"
    assert stage_words("some_new_stage") == "some new stage"  # unknown: words, no underscores


def test_clock_and_time_left() -> None:
    assert clock(0) == "0:00" and clock(65.4) == "1:05" and clock(3725) == "1:02:05"
    assert seconds_left(10.0, 0.25) == pytest.approx(30.0)
    assert seconds_left(10.0, 0.01) is None  # too early to say
    assert seconds_left(0.5, 0.5) is None
    assert seconds_left(10.0, 1.0) is None


NOW = 1_800_000_000.0


def _job(state: int, stage: str = "", progress: float = 0.0, started_s_ago: int = 0
         ) -> pb.TrainingJob:
    job = pb.TrainingJob(job_id="job-1", state=state, stage=stage, progress=progress)
    job.create_time.FromSeconds(int(NOW) - started_s_ago - 5)
    if started_s_ago:
        job.start_time.FromSeconds(int(NOW) - started_s_ago)
    return job


def test_job_progress_lines() -> None:
    out = io.StringIO()  # not a terminal: one plain line per new text
    show = JobProgress(ProgressLine(out), clock=lambda: NOW)
    show(_job(pb.JOB_STATE_QUEUED))
    show(_job(pb.JOB_STATE_RUNNING, "refit_fit", 0.5, started_s_ago=20))
    show(_job(pb.JOB_STATE_RUNNING, "done", 1.0, started_s_ago=40))
    show(_job(pb.JOB_STATE_SUCCEEDED, "done", 1.0, started_s_ago=41))
    queued, running, loading, done = out.getvalue().splitlines()
    assert queued.startswith("queued, waiting for a training slot")
    assert "50.0%" in running and "refitting on all history: training XGBoost" in running
    assert "0:20 elapsed, about 0:20 left" in running
    assert "refit_fit" not in out.getvalue()
    # The training run is over: words and the elapsed time, not a bar at 100% with an ETA.
    assert loading == "running   loading model  0:40 elapsed"
    assert done.startswith("[") and "100.0%  succeeded" in done


def test_plain_output_repeats_a_line_only_when_the_text_changes() -> None:
    out = io.StringIO()
    line = ProgressLine(out)
    for i in range(5):
        line.show("training XGBoost", 0.3 + i / 100, elapsed_s=10 + i)
    line.show("scoring on the test window", 0.5, elapsed_s=16)
    assert len(out.getvalue().splitlines()) == 2  # elapsed time alone is not news
