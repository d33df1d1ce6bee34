"""API keys: issued once, stored only as salted hashes, looked up by a public key id.

A key reads `fgk_<key id>_<secret>`: the key id (16 hex characters) finds the stored record; the
secret (32 random bytes, URL-safe base64) is what proves possession. The store keeps the key id,
a random 16-byte salt and HMAC-SHA256(salt, secret), never the secret, so a copy of the
registry cannot be replayed as a key. Why a fast hash and not scrypt/PBKDF2: a slow hash buys
time against guessing low-entropy passwords; a 256-bit random secret cannot be guessed at any
speed, while a slow hash would cost every cold call (and every forged one) tens of
milliseconds of CPU. docs/security.md has the reasoning and the lifecycle.

The table `api_keys` lives in the store's database (`store.schema`) beside the registry, so a
key issued or revoked on one replica of a fleet holds on all of them (within their auth cache).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from forecast_gateway.auth.principal import Role
from forecast_gateway.errors import InvalidArgument, NotFound
from forecast_gateway.store import schema
from forecast_gateway.store.database import Database

KEY_PREFIX = "fgk_"
_KEY_RE = re.compile(r"fgk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
MAX_NAME_CHARS = 200

_keys = schema.api_keys


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
    """Issue, verify, list and revoke API keys in the store's database.

    Thread-safe: each method is one short transaction on a pooled connection. Retailer
    existence is the registry's business: callers check it first (`forecast_gateway.auth.admin`).
    """

    def __init__(self, db: Database):
        self.db = db

    def close(self) -> None:
        """Nothing of its own to close: the database belongs to whoever opened it."""

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
        with self.db.write() as conn:
            conn.execute(_keys.insert().values(
                key_id=key_id, role=role.value, retailer=retailer, name=name, salt=salt,
                hash=_digest(salt, secret), created_at=now))
        record = ApiKey(key_id, role, retailer, name, now, None)
        return IssuedKey(record, f"{KEY_PREFIX}{key_id}_{secret}")

    def verify(self, key: str) -> ApiKey | None:
        """The record of a valid (well-formed, known, unrevoked, matching) key, else None."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        row = self._row(key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(bytes(row.hash), _digest(bytes(row.salt), secret)):
            return None
        return _record(row)

    def _row(self, key_id: str):
        with self.db.read() as conn:
            return conn.execute(select(_keys).where(_keys.c.key_id == key_id)).first()

    def get(self, key_id: str) -> ApiKey:
        """A key's record by id; NotFound when there is none."""
        if not _KEY_ID_RE.fullmatch(key_id):
            raise InvalidArgument("key_id", f"{key_id[:40]!r} is not a key id (16 hex characters)")
        row = self._row(key_id)
        if row is None:
            raise NotFound("api key", key_id)
        return _record(row)

    def list(self, retailer: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, oldest first: one retailer's, or all (admin keys included) when None."""
        query = select(_keys)
        if retailer is not None:
            query = query.where(_keys.c.retailer == retailer)
        if not include_revoked:
            query = query.where(_keys.c.revoked_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(_keys.c.created_at, _keys.c.key_id)).all()
        return [_record(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent: revoking twice keeps the first time); returns its record."""
        self.get(key_id)
        with self.db.write() as conn:
            conn.execute(_keys.update().where(_keys.c.key_id == key_id)
                         .where(_keys.c.revoked_at.is_(None)).values(revoked_at=time.time()))
        return self.get(key_id)


def _record(row) -> ApiKey:
    return ApiKey(key_id=row.key_id, role=Role(row.role), retailer=row.retailer,
                  name=row.name, created_at=row.created_at, revoked_at=row.revoked_at)
