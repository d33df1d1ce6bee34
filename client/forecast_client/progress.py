"""Progress displays shared by the `forecast` CLI and `make demo`: a one-line bar with the
elapsed time and an estimate of the time left, and a training job's stages in words."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb

#: The training code's stage names (`progress stage=<name>` lines), in the user's words.
STAGE_WORDS = {
    "start": "starting",
    "validate": "checking the data",
    "clean": "cleaning the data",
    "featurize": "building features",
    "fit": "training XGBoost",
    "lstm_windows": "preparing the LSTM's windows",
    "lstm_fit": "training the LSTM",
    "hybrid_fit": "blending the members",
    "evaluate": "scoring on the test window",
    # The training run has finished; the gateway loads the model before the job succeeds.
    "done": "loading model",
}
#: Prefix of the stages that refit the members on all history after the evaluation.
REFIT_PREFIX = "refit_"


def stage_words(stage: str) -> str:
    """A training stage in words: `refit_fit` -> 'refitting on all history: training XGBoost'."""
    if stage.startswith(REFIT_PREFIX):
        return "refitting on all history: " + stage_words(stage.removeprefix(REFIT_PREFIX))
    return STAGE_WORDS.get(stage, stage.replace("_", " "))


def clock(seconds: float) -> str:
    """A duration as M:SS, or H:MM:SS from an hour on."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def seconds_left(elapsed_s: float, fraction: float) -> float | None:
    """The time left at the rate so far, or None while too little is known to say."""
    if fraction < 0.02 or fraction >= 1.0 or elapsed_s < 1.0:
        return None
    return elapsed_s * (1.0 - fraction) / fraction


class ProgressLine:
    """A one-line progress display on `stream` (redrawn on a terminal, plain lines otherwise)."""

    def __init__(self, stream: TextIO, enabled: bool = True):
        self.stream = stream
        self.tty = stream.isatty()
        self.enabled = enabled
        self._last = ""
        self._last_time = 0.0

    def show(self, text: str, fraction: float | None = None, force: bool = False,
             elapsed_s: float | None = None) -> None:
        """Show `text`, after a 30-character bar when `fraction` (0..1) is given, and the
        elapsed time and an estimate of the time left when `elapsed_s` is given.

        Off a terminal a line is written when `text` changes, else at most every 5 s."""
        if not self.enabled:
            return
        line = text
        if fraction is not None:
            filled = round(max(0.0, min(1.0, fraction)) * 30)
            line = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}%  {text}"
        if elapsed_s is not None:
            line += f"  {clock(elapsed_s)} elapsed"
            left = None if fraction is None else seconds_left(elapsed_s, fraction)
            if left is not None:
                line += f", about {clock(left)} left"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        else:
            now = time.monotonic()
            # Plain output (logs, CI): at most one line per 5 s unless the text says something new.
            if force or text != self._last or now - self._last_time >= 5:
                self.stream.write(line + "\n")
                self.stream.flush()
                self._last, self._last_time = text, now

    def done(self) -> None:
        """End the redrawn line (on a terminal)."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def job_state_name(state: int) -> str:
    """'running' for JOB_STATE_RUNNING."""
    return pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()  # type: ignore[arg-type]


class JobProgress:
    """Shows each event of a training job on a `ProgressLine`: its state, its stage in words,
    the time since it started and an estimate of the time left.

    Pass an instance as `on_update` to `ForecastClient.wait_for_job`. `clock` gives the wall
    time in seconds (the job's times are wall-clock timestamps)."""

    def __init__(self, line: ProgressLine, clock: Callable[[], float] = time.time):
        self.line = line
        self._clock = clock
        self._seen_at = clock()

    def __call__(self, job: pb.TrainingJob) -> None:
        """Show one event of the job."""
        since = job.start_time if job.HasField("start_time") else job.create_time
        started = since.seconds + since.nanos / 1e9 if since.seconds else self._seen_at
        elapsed = max(0.0, self._clock() - started)
        if job.state == pb.JOB_STATE_QUEUED:
            self.line.show("queued, waiting for a training slot", None, elapsed_s=elapsed)
        elif job.state == pb.JOB_STATE_RUNNING and (job.progress >= 1.0 or job.stage == "done"):
            # The training run is over; what is left is the gateway's part, whose length the
            # fraction cannot tell: show words, not a bar stuck at 100%.
            self.line.show(f"running   {stage_words(job.stage or 'done')}", None, elapsed_s=elapsed)
        elif job.state == pb.JOB_STATE_RUNNING:
            self.line.show(f"running   {stage_words(job.stage or 'start')}", job.progress,
                           elapsed_s=elapsed)
        else:
            self.line.show(job_state_name(job.state), job.progress if job.progress else None,
                           force=True, elapsed_s=elapsed)
