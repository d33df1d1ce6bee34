"""One gateway per data directory: an exclusive `flock` on `<data-dir>/gateway.lock`.

Two gateways on one data dir would both run jobs, publish versions and move live pointers, and
each would undo the other's work. The lock is taken before anything in the data dir is created
or changed, and held for the life of the process; the kernel drops it when the process ends,
even after `kill -9`, so a crash never leaves a stale lock behind. The file also holds the
holder's pid, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import BinaryIO

LOCK_NAME = "gateway.lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data dir's lock."""


class DataDirLock:
    """`acquire()` or raise DataDirInUse; `release()` (idempotent) when the gateway has stopped.

    The lock lives as long as its open file: dropping the object (a gateway that failed to
    start) releases it too."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / LOCK_NAME
        self._file: BinaryIO | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock without waiting; returns self."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open for the process lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read(32).decode(errors="replace").strip() or "unknown"
            fh.close()
            raise DataDirInUse(
                f"data dir {str(self.path.parent)!r} is in use by another forecast-gateway "
                f"(pid {holder}); stop it or choose another --data-dir") from None
        except BaseException:
            fh.close()
            raise
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n".encode())
        fh.flush()
        self._file = fh
        return self

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
