"""The training queue's guarantees, with scripted jobs instead of training processes: fair picks,
cancel of a queued and of a running job, close, crashes, and exactly one `on_finished` per job."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from forecast_gateway.backends.base import TrainingOutcome, TrainingSpec
from forecast_gateway.backends.training_queue import QueuedJob, TrainingQueue
from forecast_gateway.errors import BackendUnavailable

WAIT_S = 10.0


class Recorder:
    """A listener that records `on_finished` and lets a test wait for it."""

    def __init__(self) -> None:
        self.finished: dict[str, list[TrainingOutcome]] = {}
        self._cond = threading.Condition()

    def on_started(self, job_id: str) -> None:
        pass

    def on_progress(self, job_id: str, stage: str, fraction: float) -> None:
        pass

    def on_metric(self, job_id: str, name: str, value: float) -> None:
        pass

    def on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        with self._cond:
            self.finished.setdefault(job_id, []).append(outcome)
            self._cond.notify_all()

    def outcome(self, job_id: str) -> TrainingOutcome:
        with self._cond:
            assert self._cond.wait_for(lambda: job_id in self.finished, WAIT_S), job_id
            return self.finished[job_id][0]


class Script:
    """`run`, `stop` and `release` for the queue: each job runs until the test releases it or a
    stop request arrives."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[tuple[str, float]] = []
        self.released: list[str] = []
        self.go: dict[str, threading.Event] = {}
        self.crash: set[str] = set()
        self._cond = threading.Condition()

    def gate(self, job_id: str) -> threading.Event:
        with self._cond:
            return self.go.setdefault(job_id, threading.Event())

    def run(self, job: QueuedJob) -> TrainingOutcome:
        if job.spec.job_id in self.crash:
            raise RuntimeError("boom")
        if job.launch(lambda: object()) is None:  # type: ignore[arg-type, return-value]
            return job.stopped_outcome()
        with self._cond:
            self.started.append(job.spec.job_id)
            self._cond.notify_all()
        assert self.gate(job.spec.job_id).wait(WAIT_S)
        if job.stopping:
            return job.stopped_outcome()
        return TrainingOutcome("succeeded", model_dir=Path("/model"))

    def stop(self, job: QueuedJob, grace_s: float) -> None:
        self.stopped.append((job.spec.job_id, grace_s))
        self.gate(job.spec.job_id).set()

    def release(self, job: QueuedJob) -> None:
        self.released.append(job.spec.job_id)

    def wait_started(self, *job_ids: str) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: set(job_ids) <= set(self.started), WAIT_S)


def spec(job_id: str, retailer: str) -> TrainingSpec:
    return TrainingSpec(job_id=job_id, retailer=retailer, job_dir=Path("/nonexistent"),
                        data_path=Path("/nonexistent/train.csv"), data_format="csv",
                        hyperparameters={})


class Harness:
    """Queues running `Script` jobs; every queue is closed at teardown."""

    def __init__(self) -> None:
        self.script, self.listener = Script(), Recorder()
        self.queues: list[TrainingQueue[QueuedJob]] = []

    def queue(self, slots: int = 1) -> TrainingQueue[QueuedJob]:
        q = TrainingQueue(self.script.run, self.script.stop, release=self.script.release,
                          slots=slots, cancel_grace_s=7.0,
                          log=logging.getLogger("test.training_queue"), join_timeout_s=WAIT_S)
        self.queues.append(q)
        return q

    def submit(self, q: TrainingQueue[QueuedJob], job_id: str, retailer: str = "acme") -> None:
        q.submit(QueuedJob(spec(job_id, retailer), self.listener))


@pytest.fixture()
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    for q in harness.queues:
        q.close("test over")
    for gate in harness.script.go.values():
        gate.set()
    finished = harness.listener.finished
    assert all(len(v) == 1 for v in finished.values()), f"on_finished more than once: {finished}"


def test_a_retailer_with_nothing_running_goes_first(h: Harness) -> None:
    q = h.queue(slots=2)
    h.submit(q, "a1", "acme")
    h.submit(q, "c1", "corp")
    h.script.wait_started("a1", "c1")
    h.submit(q, "a2", "acme")  # both slots busy: a2 and g1 wait
    h.submit(q, "g1", "globex")
    h.script.gate("c1").set()  # a slot frees while acme still runs a1
    h.script.wait_started("g1")
    assert "a2" not in h.script.started
    for job_id in ("a1", "g1"):
        h.script.gate(job_id).set()
    h.script.wait_started("a2")
    h.script.gate("a2").set()
    for job_id in ("a1", "c1", "g1", "a2"):
        assert h.listener.outcome(job_id).state == "succeeded"
    assert Counter(h.script.released) == Counter({"a1": 1, "c1": 1, "g1": 1, "a2": 1})


def test_cancel_a_queued_job_finishes_it_at_once(h: Harness) -> None:
    q = h.queue()
    h.submit(q, "first")
    h.script.wait_started("first")
    h.submit(q, "second")
    assert q.cancel("second") is True
    assert h.listener.finished["second"] == [
        TrainingOutcome("cancelled", failure_reason="cancelled while queued")]
    assert q.cancel("second") is False and q.cancel("unknown") is False
    h.script.gate("first").set()
    assert h.listener.outcome("first").state == "succeeded"
    assert "second" not in h.script.started and "second" not in h.script.released


def test_cancel_a_running_job_stops_it_with_the_cancel_grace(h: Harness) -> None:
    q = h.queue()
    h.submit(q, "job")
    h.script.wait_started("job")
    assert q.cancel("job") is True
    assert h.listener.outcome("job") == TrainingOutcome(
        "cancelled", failure_reason="cancelled by request")
    assert h.script.stopped == [("job", 7.0)]
    assert q.cancel("job") is False


def test_a_stop_before_launch_never_starts_the_process(h: Harness) -> None:
    job = QueuedJob(spec("job", "acme"), h.listener)
    job.cancel_requested = True
    assert job.launch(lambda: pytest.fail("launched")) is None
    assert job.process is None


def test_close_fails_queued_and_running_jobs_with_the_reason(h: Harness) -> None:
    q = h.queue()
    h.submit(q, "running")
    h.script.wait_started("running")
    h.submit(q, "queued")
    q.close("the gateway stopped")
    for job_id in ("running", "queued"):
        assert h.listener.outcome(job_id) == TrainingOutcome(
            "failed", failure_reason="the gateway stopped")
    assert h.script.stopped == [("running", 10.0)]
    with pytest.raises(BackendUnavailable):
        h.submit(q, "late")


def test_a_crash_in_the_backend_fails_the_job_once(h: Harness) -> None:
    q = h.queue()
    h.script.crash.add("bad")
    h.submit(q, "bad")
    outcome = h.listener.outcome("bad")
    assert outcome.state == "failed"
    assert outcome.failure_reason == "backend error: RuntimeError: boom"
    h.submit(q, "good")  # the slot survives the crash
    h.script.wait_started("good")
    h.script.gate("good").set()
    assert h.listener.outcome("good").state == "succeeded"
    assert h.script.released == ["bad", "good"]


def test_a_failing_cleanup_still_finishes_the_job(h: Harness) -> None:
    def broken_release(job: QueuedJob) -> None:
        raise OSError("docker is gone")

    h.script.release = broken_release  # type: ignore[method-assign]
    q = h.queue()
    h.submit(q, "job")
    h.script.wait_started("job")
    h.script.gate("job").set()
    assert h.listener.outcome("job").state == "succeeded"
