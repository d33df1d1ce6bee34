"""The store's database: one SQLAlchemy engine, its transactions, and its schema brought to the
head revision at open.

- ``sqlite:///<data-dir>/registry.sqlite3`` (the default, no server): WAL, ``synchronous=NORMAL``,
  foreign keys on; a write transaction is ``BEGIN IMMEDIATE`` (it takes the write lock at once,
  so two writers queue instead of deadlocking on an upgrade), a read one ``BEGIN``. Several
  processes may open the file (the offline ``forecast-gateway keys`` command beside a running
  gateway): a writer waits up to ``busy_timeout_s`` for another's transaction.
- ``postgresql://...`` (a fleet; the driver is psycopg 3): a connection pool, READ COMMITTED;
  what must not race (a job claimed by two gateways, two versions numbered alike) takes row
  locks (``FOR UPDATE [SKIP LOCKED]``) or rests on a unique key.

``Database.open`` upgrades the schema with Alembic (``migrations/``) under a lock that one
process at a time holds (PostgreSQL: an advisory lock; SQLite: the write lock), so replicas
started together migrate once.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from forecast_gateway.store import schema

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock key of the schema upgrade ("forecast" in ASCII).
UPGRADE_LOCK = 0x666F7265636173


def alembic_config():
    """Alembic's configuration of the store's revisions (no alembic.ini: the caller passes the
    connection in ``config.attributes["connection"]``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class DatabaseError(RuntimeError):
    """The database cannot be used (a bad URL, a newer schema, a server that refuses)."""


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and messages)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL of a ``--database-url``: ``postgresql://`` means psycopg 3; a plain
    path means a SQLite file."""
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:///", "postgresql+psycopg://")):
        return url
    raise DatabaseError(f"--database-url {redacted(url)!r}: expected postgresql://... or "
                        f"sqlite:///PATH")


class Database:
    """The engine and its transactions; build one with ``open``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._local_locks: dict[str, threading.Lock] = {}
        self._local_guard = threading.Lock()

    @classmethod
    def open(cls, url: str, *, busy_timeout_s: float = 10.0, pool_size: int = 8,
             upgrade: bool = True) -> Database:
        """Connect to ``url`` and bring its schema to the head revision."""
        sa_url = normalise_url(url)
        if sa_url.startswith("sqlite"):
            path = make_url(sa_url).database
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(sa_url, connect_args={
                "timeout": busy_timeout_s, "check_same_thread": False})
            _sqlite_events(engine)
        else:
            engine = create_engine(sa_url, pool_size=pool_size, max_overflow=pool_size,
                                   pool_pre_ping=True, pool_recycle=300,
                                   connect_args={"connect_timeout": 10,
                                                 "application_name": "forecast-gateway"})
        db = cls(engine)
        try:
            if upgrade:
                db.upgrade()
            else:
                db.check_schema()
        except Exception:
            engine.dispose()
            raise
        return db

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (committed at the end, rolled back when the body raises)."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def upgrade(self) -> None:
        """Run every Alembic revision the database lacks, one process at a time."""
        from alembic import command
        from alembic.util import CommandError

        config = alembic_config()

        with self.engine.connect().execution_options(write=True) as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": UPGRADE_LOCK})
            try:
                config.attributes["connection"] = conn
                try:
                    command.upgrade(config, "head")
                except CommandError as exc:   # a revision this gateway does not know
                    raise DatabaseError(f"the database's schema is newer than this gateway "
                                        f"knows ({exc}): upgrade the gateway") from None
                conn.commit()
            finally:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": UPGRADE_LOCK})
                    conn.commit()
        self.check_schema()

    def check_schema(self) -> None:
        """DatabaseError unless the database is at this gateway's head revision."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            raise DatabaseError(f"the database is at schema revision {current!r}; this gateway "
                                f"needs {head!r} (start a gateway that upgrades it, or upgrade "
                                f"this gateway)")

    def insert_ignoring_duplicates(self, table):
        """``INSERT`` into ``table`` that skips rows whose key is already there (SQLite's
        ``INSERT OR IGNORE``, PostgreSQL's ``ON CONFLICT DO NOTHING``)."""
        return self._insert(table).on_conflict_do_nothing()

    def insert_or_replace(self, table, keys: tuple[str, ...], values: dict):
        """``INSERT`` of one row into ``table`` that replaces the row with the same ``keys``."""
        stmt = self._insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: stmt.excluded[k] for k in values if k not in keys})

    def _insert(self, table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def bump(self, conn: Connection, name: str) -> int:
        """Add one to the counter ``name`` (``schema.sequences``) in ``conn``'s transaction."""
        seq = schema.sequences
        conn.execute(seq.update().where(seq.c.name == name).values(value=seq.c.value + 1))
        return int(conn.execute(seq.select().with_only_columns(seq.c.value)
                                .where(seq.c.name == name)).scalar_one())

    def counter(self, name: str) -> int:
        """The counter ``name`` (what replicas poll)."""
        seq = schema.sequences
        with self.engine.connect() as conn:
            value = conn.execute(seq.select().with_only_columns(seq.c.value)
                                 .where(seq.c.name == name)).scalar()
        return int(value or 0)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the named lock: every gateway on this database waits for it (PostgreSQL: a
        session advisory lock on a connection held meanwhile; SQLite, one gateway per file: a
        lock in this process). What a retailer's publish or actuals upload must not do twice
        at once, across replicas."""
        if self.dialect != "postgresql":
            with self._local_guard:
                local = self._local_locks.setdefault(name, threading.Lock())
            with local:
                yield
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_events(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE for writes (the pysqlite driver's own BEGIN is
    turned off so these are the only ones)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def default_url(data_dir: Path) -> str:
    """The embedded default: the data dir's SQLite file (the file the release before kept its
    registry in, so an upgrade finds its data)."""
    return f"sqlite:///{(Path(data_dir) / 'registry.sqlite3').resolve()}"
