"""One SQLite connection shared by a store's threads: WAL mode, one lock, short transactions.

The registry, the API-key store and the monitoring store each own one (`SqliteDb`), so every
one of them opens, locks and commits the same way. Several processes may open the same file
(the offline `forecast-gateway keys` command beside a running gateway): `timeout` is how long a
writer waits for another process's transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqliteDb:
    """A connection (`conn`) and the lock (`lock`) every use of it holds."""

    def __init__(self, path: Path, *, schema: str = "", rows_by_name: bool = False,
                 foreign_keys: bool = False, reentrant: bool = False, timeout: float = 10.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock: threading.Lock | threading.RLock = threading.RLock() if reentrant \
            else threading.Lock()
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                    timeout=timeout)
        if rows_by_name:
            self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if foreign_keys:
            self.conn.execute("PRAGMA foreign_keys=ON")
        if schema:
            with self.lock:
                self.conn.executescript(schema)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK when the body raises)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()
