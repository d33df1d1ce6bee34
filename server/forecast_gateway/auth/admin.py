"""The admin operations, one implementation for both faces: the AdminService RPCs and the
offline `forecast-gateway keys ...` command. Create a retailer, issue, list and revoke keys."""

from __future__ import annotations

from collections.abc import Callable

from forecast_gateway.auth.keys import ApiKey, IssuedKey, KeyStore
from forecast_gateway.auth.principal import Role
from forecast_gateway.errors import AlreadyExists, NotFound
from forecast_gateway.store.registry import Registry
from forecast_gateway.store.storage import check_retailer


class KeyAdmin:
    """Admin operations over the registry (retailers) and the key store (keys).

    `on_revoke(key_id)` is called after a revocation, so a running gateway drops the key from
    its cache at once instead of after the cache's time-to-live.
    """

    def __init__(self, registry: Registry, keys: KeyStore,
                 on_revoke: Callable[[str], None] | None = None):
        self.registry = registry
        self.keys = keys
        self._on_revoke = on_revoke

    def create_retailer(self, retailer: str, key_name: str = "") -> IssuedKey:
        """Create a new retailer and issue its first key. AlreadyExists when it exists."""
        check_retailer(retailer)
        if self.registry.retailer_exists(retailer):
            raise AlreadyExists(f"retailer {retailer!r} exists already; issue it another key "
                                "instead")
        self.registry.ensure_retailer(retailer)
        return self.keys.issue(Role.RETAILER, retailer, key_name)

    def issue_key(self, role: Role, retailer: str = "", name: str = "") -> IssuedKey:
        """A new key: for an existing retailer (RETAILER) or an admin key (ADMIN)."""
        if role is Role.ADMIN:
            return self.keys.issue(Role.ADMIN, None, name)
        check_retailer(retailer)
        if not self.registry.retailer_exists(retailer):
            raise NotFound("retailer", retailer, "create it first")
        return self.keys.issue(Role.RETAILER, retailer, name)

    def list_keys(self, retailer: str = "", include_revoked: bool = False) -> list[ApiKey]:
        """Every key (retailer ""), or one retailer's."""
        return self.keys.list(check_retailer(retailer) if retailer else None, include_revoked)

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key; calls made with it are refused from now on."""
        record = self.keys.revoke(key_id)
        if self._on_revoke is not None:
            self._on_revoke(key_id)
        return record
