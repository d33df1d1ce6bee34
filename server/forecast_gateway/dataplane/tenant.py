"""`Tenant`: a retailer id that the edge has already validated (and, with auth, authorised).

The servicer and the HTTP face turn the request's retailer into a `Tenant` once; the data plane
takes `Tenant`s and never parses or re-checks a retailer string of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from forecast_gateway.store.storage import check_retailer


@dataclass(frozen=True)
class Tenant:
    """One retailer, as the data plane sees it."""

    retailer: str
    """The retailer id: 1-63 characters of [a-z0-9_-], safe as a path component."""

    @classmethod
    def parse(cls, retailer: str, field: str = "retailer") -> Tenant:
        """Validate a retailer id from a request; InvalidArgument names `field` when it is bad."""
        return cls(check_retailer(retailer, field))
