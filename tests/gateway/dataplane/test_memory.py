"""The releaser hands freed memory back once bulk streams are quiet, and not while they keep
ending."""

from __future__ import annotations

import time

from forecast_gateway import memory


def test_release_waits_for_quiet_then_runs(monkeypatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(time.monotonic()) or True)
    monkeypatch.setattr(memory, "AGAIN_AFTER_S", (0.1, 0.0))
    releaser = memory.Releaser(quiet_s=1.0)
    try:
        started = time.monotonic()
        for _ in range(5):  # streams keep ending: nothing yet
            releaser.stream_ended()
            time.sleep(0.1)
        assert calls == [] or memory._LIBC is None
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        if memory._LIBC is not None:
            assert len(calls) == 2  # once quiet, then once more
            assert calls[0] - started >= 0.4 + 1.0
    finally:
        releaser.close()


def test_limit_arenas_is_accepted() -> None:
    assert memory.limit_arenas(memory.ARENAS) == (memory._LIBC is not None)
