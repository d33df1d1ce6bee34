"""API keys: issued once, stored only as salted hashes, looked up by a public key id.

A key reads `fgk_<key id>_<secret>`: the key id (16 hex characters) finds the stored record; the
secret (32 random bytes, URL-safe base64) is what proves possession. The store keeps the key id,
a random 16-byte salt and HMAC-SHA256(salt, secret), never the secret, so a copy of the
registry cannot be replayed as a key. Why a fast hash and not scrypt/PBKDF2: a slow hash buys
time against guessing low-entropy passwords; a 256-bit random secret cannot be guessed at any
speed, while a slow hash would cost every cold call (and every forged one) tens of
milliseconds of CPU. docs/security.md has the reasoning and the lifecycle.

The table `api_keys` lives in the registry's SQLite file and belongs to this module alone
(created if missing, on its own connection, so the registry's schema does not change).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from forecast_gateway.auth.principal import Role
from forecast_gateway.errors import InvalidArgument, NotFound
from forecast_gateway.sqlite_db import SqliteDb

KEY_PREFIX = "fgk_"
_KEY_RE = re.compile(r"fgk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
MAX_NAME_CHARS = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('retailer', 'admin')),
    retailer   TEXT,
    name       TEXT NOT NULL DEFAULT '',
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    CHECK ((role = 'retailer') = (retailer IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS api_keys_by_retailer ON api_keys (retailer);
"""


@dataclass(frozen=True)
class ApiKey:
    """A stored key's public record (never its secret)."""

    key_id: str
    """The public half of the key: shown in lists and logs, used to revoke it."""
    role: Role
    """RETAILER or ADMIN."""
    retailer: str | None
    """The retailer a RETAILER key acts for."""
    name: str
    """A free-form label given at issue (who or what holds it)."""
    created_at: float
    """When it was issued (epoch seconds)."""
    revoked_at: float | None
    """When it was revoked, or None while it is valid."""

    @property
    def revoked(self) -> bool:
        """True once revoked."""
        return self.revoked_at is not None


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: the only time the full key exists outside the caller's hands."""

    record: ApiKey
    """What the store keeps about it."""
    key: str
    """The full key, `fgk_<key id>_<secret>`; shown once and never stored."""


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None (a full match: no trailing bytes)."""
    match = _KEY_RE.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


class KeyStore:
    """Issue, verify, list and revoke API keys in `<data-dir>/registry.sqlite3`.

    Thread-safe: one connection guarded by a lock; each method is one short statement or
    transaction. Retailer existence is the registry's business: callers check it first
    (`forecast_gateway.auth.admin`).
    """

    def __init__(self, path: Path):
        self._sql = SqliteDb(path, schema=_SCHEMA, rows_by_name=True)
        self._db, self._lock = self._sql.conn, self._sql.lock

    def close(self) -> None:
        """Close the connection."""
        self._sql.close()

    def issue(self, role: Role, retailer: str | None, name: str = "") -> IssuedKey:
        """A new key for `retailer` (RETAILER) or an admin key (ADMIN, retailer None)."""
        if role not in (Role.RETAILER, Role.ADMIN):
            raise InvalidArgument("role", f"keys are issued for retailers or admins, not {role.value}")
        if (role is Role.RETAILER) != (retailer is not None):
            raise InvalidArgument("retailer", "a retailer key names its retailer; an admin key none")
        if len(name) > MAX_NAME_CHARS or any(not c.isprintable() for c in name):
            raise InvalidArgument("name", f"at most {MAX_NAME_CHARS} printable characters")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (key_id, role, retailer, name, salt, hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, role.value, retailer, name, salt, _digest(salt, secret), now))
        record = ApiKey(key_id, role, retailer, name, now, None)
        return IssuedKey(record, f"{KEY_PREFIX}{key_id}_{secret}")

    def verify(self, key: str) -> ApiKey | None:
        """The record of a valid (well-formed, known, unrevoked, matching) key, else None."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        with self._lock:
            row = self._db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(bytes(row["hash"]), _digest(bytes(row["salt"]), secret)):
            return None
        return _record(row)

    def get(self, key_id: str) -> ApiKey:
        """A key's record by id; NotFound when there is none."""
        if not _KEY_ID_RE.fullmatch(key_id):
            raise InvalidArgument("key_id", f"{key_id[:40]!r} is not a key id (16 hex characters)")
        with self._lock:
            row = self._db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound("api key", key_id)
        return _record(row)

    def list(self, retailer: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, oldest first: one retailer's, or all (admin keys included) when None."""
        query, params = "SELECT * FROM api_keys", []
        clauses = []
        if retailer is not None:
            clauses.append("retailer = ?")
            params.append(retailer)
        if not include_revoked:
            clauses.append("revoked_at IS NULL")
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, key_id", params).fetchall()
        return [_record(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent: revoking twice keeps the first time); returns its record."""
        self.get(key_id)
        with self._lock:
            self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? "
                             "AND revoked_at IS NULL", (time.time(), key_id))
        return self.get(key_id)


def _record(row: sqlite3.Row) -> ApiKey:
    return ApiKey(key_id=row["key_id"], role=Role(row["role"]), retailer=row["retailer"],
                  name=row["name"], created_at=row["created_at"], revoked_at=row["revoked_at"])
