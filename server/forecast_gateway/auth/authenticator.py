"""`Authenticator`: turns one call's credential into a `Principal`, or refuses it.

Credentials, in order: a bearer API key in the `authorization` metadata (`Bearer fgk_...`),
else a verified mTLS client certificate whose subject CN is a retailer id. Verified keys are
cached for `cache_s` seconds (keyed by a SHA-256 of the key, so the cache holds no key), which
keeps the hot path to one dict lookup; a revocation through the gateway's own AdminService
evicts at once, an offline `forecast-gateway keys revoke` takes effect within `cache_s`.

`AUTH_FAILURES` counts refused calls by status and reason (for the metrics exporter).
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Iterable, Mapping

from forecast_gateway.auth.keys import KeyStore
from forecast_gateway.auth.principal import Principal, Role
from forecast_gateway.errors import InvalidArgument, Unauthenticated
from forecast_gateway.store.storage import check_retailer

BEARER = "bearer "
CACHE_MAX_ENTRIES = 10_000


class FailureCounter:
    """Thread-safe counts of refused calls, keyed by (status code name, reason)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def inc(self, code: str, reason: str) -> None:
        """Count one refused call."""
        with self._lock:
            self._counts[(code, reason)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        """The counts so far."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        """All refused calls so far."""
        with self._lock:
            return sum(self._counts.values())


#: Refused calls since the process started (UNAUTHENTICATED and PERMISSION_DENIED).
AUTH_FAILURES = FailureCounter()


class Authenticator:
    """Checks the credential of a call; see the module docstring."""

    def __init__(self, keys: KeyStore, cache_s: float = 10.0):
        self._keys = keys
        self._cache_s = cache_s
        self._cache: dict[bytes, tuple[Principal, str, float]] = {}  # digest -> (p, key id, expiry)
        self._lock = threading.Lock()

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None,
                     auth_context: Mapping[str, Iterable[bytes]] | None) -> Principal:
        """The caller's principal; Unauthenticated (with a `reason`) when there is none."""
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if header is not None:
            return self._from_key(header if isinstance(header, str) else header.decode("latin-1"))
        names = list((auth_context or {}).get("x509_common_name", ()))
        if names:
            return self._from_certificate(names[0].decode("utf-8", "replace"))
        raise _refuse("missing", "no credential: send the metadata `authorization: Bearer "
                      "<api key>` (or a client certificate, when the gateway asks for one)")

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after it is revoked)."""
        with self._lock:
            for digest in [d for d, (_, kid, _) in self._cache.items() if kid == key_id]:
                del self._cache[digest]

    def _from_key(self, header: str) -> Principal:
        if not header[:len(BEARER)].lower() == BEARER:
            raise _refuse("malformed", "the authorization metadata must read `Bearer <api key>`")
        key = header[len(BEARER):].strip()
        digest = hashlib.sha256(key.encode("utf-8", "replace")).digest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[2] > now:
            return hit[0]
        record = self._keys.verify(key)
        if record is None:
            raise _refuse("invalid_key", "the API key is unknown or revoked")
        principal = Principal(record.role, record.retailer, f"key:{record.key_id}")
        with self._lock:
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (principal, record.key_id, now + self._cache_s)
        return principal

    @staticmethod
    def _from_certificate(common_name: str) -> Principal:
        try:
            retailer = check_retailer(common_name)
        except InvalidArgument:
            raise _refuse("bad_certificate", f"the client certificate's subject CN "
                          f"{common_name[:64]!r} is not a retailer id; send an API key") from None
        return Principal(Role.RETAILER, retailer, f"cert:{retailer}")


def _refuse(reason: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, reason)
