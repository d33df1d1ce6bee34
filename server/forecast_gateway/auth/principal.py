"""`Principal`: the caller of one RPC, resolved once from its credential by the interceptor and
handed inward through a context variable (like the request id).

A principal is a retailer (it acts for that retailer only), an admin (it runs the admin
operations and nothing else) or, with `--no-auth`, `UNRESTRICTED` (any retailer, admin too).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from enum import Enum

from forecast_gateway.errors import PermissionDenied


class Role(Enum):
    """What a credential may do."""

    RETAILER = "retailer"
    """Act for one retailer: its datasets, jobs, models and predictions."""
    ADMIN = "admin"
    """Create retailers and issue, list and revoke keys; no retailer's data."""
    UNRESTRICTED = "unrestricted"
    """Anything (only when the gateway runs with --no-auth on loopback)."""


@dataclass(frozen=True)
class Principal:
    """A caller whose credential has been checked."""

    role: Role
    """What it may do."""
    retailer: str | None
    """The one retailer a RETAILER principal acts for (None for the others)."""
    credential: str
    """Which credential proved it, for logs: "key:<key id>", "cert:<subject CN>" or "none".
    Never the secret."""

    def __post_init__(self) -> None:
        if (self.role is Role.RETAILER) != (self.retailer is not None):
            raise ValueError("a retailer principal names exactly one retailer; others none")

    def authorise_retailer(self, retailer: str) -> None:
        """Raise PermissionDenied unless this principal may act for `retailer`. The message is
        the same whether or not that retailer exists."""
        if self.role is Role.UNRESTRICTED or (self.role is Role.RETAILER and self.retailer == retailer):
            return
        if self.role is Role.ADMIN:
            raise PermissionDenied("an admin credential cannot act for a retailer; use that "
                                   "retailer's own key")
        raise PermissionDenied(f"this credential acts for retailer {self.retailer!r} only")

    def authorise_admin(self) -> None:
        """Raise PermissionDenied unless this principal may run admin operations."""
        if self.role not in (Role.ADMIN, Role.UNRESTRICTED):
            raise PermissionDenied("admin operations need an admin credential")


UNRESTRICTED = Principal(Role.UNRESTRICTED, None, "none")

#: The caller of the RPC being served; set by the interceptor, read by the servicers.
PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal",
                                                                             default=None)


def current_principal() -> Principal:
    """The principal of the call being served. A call that reached a servicer without one is a
    wiring bug (the interceptor always sets it), so this refuses rather than guessing."""
    principal = PRINCIPAL.get()
    if principal is None:
        raise PermissionDenied("no authenticated caller for this call")
    return principal
