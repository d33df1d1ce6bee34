"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries (`initdb`, `pg_ctl`),
a throwaway cluster in a temp dir, listening on 127.0.0.1:<free port> only, owned by the
`postgres` user when the tests run as root (PostgreSQL refuses to run as root).

Imported by tests/conftest.py (the `postgres` fixture) and the fleet benchmark. `.ci/run`
installs `postgresql` when it is missing; without it these tests fail, they do not skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Self

from sagemaker_job import free_port


def postgres_bin() -> Path:
    """The directory of Debian's PostgreSQL server binaries (the newest installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql "
                           "(.ci/run does this)")
    return Path(found[-1]).parent


class PostgresServer:
    """`initdb` + `pg_ctl start` in ``root``; ``url(db)`` for each database made by ``create``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.bin = postgres_bin()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as, *args], capture_output=True, text=True, check=False,
                              cwd="/")

    def start(self, deadline_s: float = 60) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        r = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr[-800:]}")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   f"-k {self.data}")
        r = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                      str(self.data / "server.log"), "-o", options, "-w", "-t",
                      str(int(deadline_s)), "start")
        if r.returncode != 0:
            log = (self.data / "server.log")
            raise RuntimeError(f"pg_ctl start failed: {r.stderr[-400:]} "
                               f"{log.read_text()[-800:] if log.exists() else ''}")
        return self

    def create(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        r = self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "postgres", name)
        if r.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {r.stderr[-400:]}")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop")
        deadline = time.monotonic() + 10
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
