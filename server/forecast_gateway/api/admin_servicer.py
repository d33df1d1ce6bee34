"""`AdminServicer`: forecastapi.v1.AdminService over `auth.admin.KeyAdmin`.

Translation only: the interceptor has already checked that the caller is an admin, `KeyAdmin`
validates and decides, `interceptor.to_status` maps its errors. Registry work runs in the
control pool, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from forecast_client._gen.forecastapi.v1 import admin_service_pb2 as apb
from forecast_client._gen.forecastapi.v1 import admin_service_pb2_grpc as apb_grpc

from forecast_gateway.api.edge import in_pool, timestamp
from forecast_gateway.auth.admin import KeyAdmin
from forecast_gateway.auth.keys import ApiKey
from forecast_gateway.auth.principal import Role
from forecast_gateway.errors import InvalidArgument

T = TypeVar("T")

_ROLE_TO_PB = {Role.RETAILER: apb.KEY_ROLE_RETAILER, Role.ADMIN: apb.KEY_ROLE_ADMIN}
_ROLE_FROM_PB = {apb.KEY_ROLE_UNSPECIFIED: Role.RETAILER, apb.KEY_ROLE_RETAILER: Role.RETAILER,
                 apb.KEY_ROLE_ADMIN: Role.ADMIN}


def api_key_to_pb(key: ApiKey) -> apb.ApiKey:
    """ApiKey -> pb.ApiKey (the public record; there is no secret to leak)."""
    return apb.ApiKey(key_id=key.key_id, role=_ROLE_TO_PB[key.role], retailer=key.retailer or "",
                      name=key.name, create_time=timestamp(key.created_at),
                      revoke_time=timestamp(key.revoked_at))


class AdminServicer(apb_grpc.AdminServiceServicer):
    """forecastapi.v1.AdminService."""

    def __init__(self, admin: KeyAdmin, control_pool: Executor):
        self._admin = admin
        self._pool = control_pool

    async def _control(self, fn: Callable[..., T], *args: Any) -> T:
        return await in_pool(self._pool, fn, *args)

    async def CreateRetailer(self, request: apb.CreateRetailerRequest,
                             context: Any) -> apb.CreateRetailerResponse:
        issued = await self._control(self._admin.create_retailer, request.retailer,
                                     request.key_name)
        return apb.CreateRetailerResponse(retailer=request.retailer,
                                          api_key=api_key_to_pb(issued.record), secret=issued.key)

    async def IssueApiKey(self, request: apb.IssueApiKeyRequest,
                          context: Any) -> apb.IssueApiKeyResponse:
        role = _ROLE_FROM_PB.get(request.role)
        if role is None:
            raise InvalidArgument("role", f"unknown key role {request.role}")
        if role is Role.ADMIN and request.retailer:
            raise InvalidArgument("retailer", "must be empty for an admin key")
        issued = await self._control(self._admin.issue_key, role, request.retailer, request.name)
        return apb.IssueApiKeyResponse(api_key=api_key_to_pb(issued.record), secret=issued.key)

    async def ListApiKeys(self, request: apb.ListApiKeysRequest,
                          context: Any) -> apb.ListApiKeysResponse:
        keys = await self._control(self._admin.list_keys, request.retailer,
                                   request.include_revoked)
        return apb.ListApiKeysResponse(api_keys=[api_key_to_pb(k) for k in keys])

    async def RevokeApiKey(self, request: apb.RevokeApiKeyRequest,
                           context: Any) -> apb.RevokeApiKeyResponse:
        if not request.key_id:
            raise InvalidArgument("key_id", "is required")
        key = await self._control(self._admin.revoke_key, request.key_id)
        return apb.RevokeApiKeyResponse(api_key=api_key_to_pb(key))
