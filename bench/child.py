"""Run one benchmark side in a fresh ``spawn`` interpreter, so its peak memory is its own; and
the data every benchmark runs on (``bench_frame``)."""

from __future__ import annotations

import multiprocessing
import resource
import traceback
from collections.abc import Callable
from typing import Any


def _entry(fn: Callable[..., dict], args: tuple, send) -> None:
    try:
        result = fn(*args)
        result["peak_rss_mb"] = peak_rss_mb()
        send.send(("ok", result))
    except BaseException:  # noqa: BLE001 - report any failure to the parent
        send.send(("error", traceback.format_exc()))
    finally:
        send.close()


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Linux's ``ru_maxrss`` is not: through fork and
    exec a spawn child inherits its parent's high-water mark (a parent that generated 3M rows
    made every child report at least its 1,186 MB), so ``VmHWM`` is read where it exists."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_child(fn: Callable[..., dict], *args: Any, timeout: float = 3600) -> dict:
    """Call ``fn(*args)`` (a module-level function returning a dict) in a spawn child.

    The result gains ``peak_rss_mb``: the child's peak resident memory.
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_entry, args=(fn, args, send))
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise TimeoutError(f"{fn.__name__} took more than {timeout:.0f}s")
        status, payload = receive.recv()
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__} failed in its child process:\n{payload}")
    return payload


def bench_frame(small: bool):
    """The benchmarks' data: the full competition scale (3,000,888 rows), or with ``small`` the
    same 4 stores x 5 families for every benchmark's quick look."""
    from forecasting import synthetic

    return synthetic.generate(4, 5, "2015-01-01") if small else synthetic.generate()
