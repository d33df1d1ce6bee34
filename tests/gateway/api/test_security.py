"""Every RPC of every service, called over a real channel with no credential, a revoked key,
another retailer's key and the right key: UNAUTHENTICATED, UNAUTHENTICATED, PERMISSION_DENIED
and the RPC's normal answer. The RPC list is read from the descriptors of every generated
`forecastapi.v1` module, so a new RPC, or a new service, is covered as soon as it exists."""

from __future__ import annotations

import importlib
import io
import json
import logging
import pkgutil
from collections.abc import Iterator

import grpc
import pytest
from forecast_client import ClientConfig, ForecastClient, ForecastClientError
from forecast_client._gen.forecastapi.v1 import admin_service_pb2 as apb
from forecast_client._gen.forecastapi.v1 import admin_service_pb2_grpc as apb_grpc
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_gateway.auth.authenticator import AUTH_FAILURES
from forecast_gateway.auth.principal import Role
from forecast_gateway.logs import JsonFormatter
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

FORECAST = pb.DESCRIPTOR.services_by_name["ForecastService"]
ADMIN = apb.DESCRIPTOR.services_by_name["AdminService"]


def _services() -> list:
    """Every service of every generated forecastapi.v1 module."""
    import forecast_client._gen.forecastapi.v1 as gen

    services = []
    for info in pkgutil.iter_modules(gen.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{gen.__name__}.{info.name}")
            services += list(module.DESCRIPTOR.services_by_name.values())
    return sorted(services, key=lambda s: s.full_name)


METHODS = [m for service in _services() for m in service.methods]
AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
NEVER = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


def _request(method: MethodDescriptor, retailer: str):
    """The method's request message naming `retailer` (header.retailer for an upload)."""
    message = message_factory.GetMessageClass(method.input_type)()
    fields = message.DESCRIPTOR.fields_by_name
    if "retailer" in fields:
        message.retailer = retailer
    if "header" in fields:
        header_fields = message.header.DESCRIPTOR.fields_by_name
        if "retailer" in header_fields:
            message.header.retailer = retailer
        if "filename" in header_fields:
            message.header.filename = "sales.csv"
    if "chunk_id" in fields:
        message.chunk_id = "c0"
    return message


def call(channel: grpc.Channel, method: MethodDescriptor, retailer: str,
         key: str | None) -> tuple[grpc.StatusCode, str]:
    """Call `method` with a minimal request for `retailer`; returns (status, details)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_type = message_factory.GetMessageClass(method.output_type)
    kind = {(False, False): channel.unary_unary, (True, False): channel.stream_unary,
            (False, True): channel.unary_stream, (True, True): channel.stream_stream}
    stub = kind[(method.client_streaming, method.server_streaming)](
        path, request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString)
    request = _request(method, retailer)
    argument = iter([request]) if method.client_streaming else request
    metadata = (("authorization", f"Bearer {key}"),) if key is not None else ()
    try:
        answer = stub(argument, timeout=10, metadata=metadata)
        if method.server_streaming:
            list(answer)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.fixture()
def secured(scripted) -> Iterator[dict]:
    """The scripted gateway (auth on, its default) with keys: shop's (shop has a live model),
    globex's, an admin key and a revoked shop key; and a channel to it."""
    admin = scripted.server.admin
    revoked = scripted.api_key("shop")
    admin.revoke_key(revoked.split("_")[1])
    keys = {"shop": scripted.api_key("shop"), "globex": scripted.api_key("globex"),
            "admin": admin.issue_key(Role.ADMIN, "", "test").key, "revoked": revoked}
    with grpc.insecure_channel(scripted.target) as channel:
        yield {"gw": scripted, "channel": channel, "keys": keys}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_every_rpc_needs_the_right_credential(secured, method: MethodDescriptor) -> None:
    channel, keys = secured["channel"], secured["keys"]
    admin_rpc = method.containing_service.full_name == ADMIN.full_name
    right = keys["admin"] if admin_rpc else keys["shop"]
    # Every RPC the protos declare is served (a declared but unserved one would dodge this test).
    assert call(channel, method, "shop", right)[0] != grpc.StatusCode.UNIMPLEMENTED, \
        f"{method.full_name} is declared but not served"
    for key in (None, keys["revoked"], "fgk_0000000000000000_" + "A" * 43, "not-a-key"):
        code, details = call(channel, method, "shop", key)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (key, code, details)
        assert key is None or key not in details
    if admin_rpc:
        for key in (keys["shop"], keys["globex"]):
            assert call(channel, method, "shop", key)[0] == grpc.StatusCode.PERMISSION_DENIED
        code, details = call(channel, method, "shop", keys["admin"])
    else:
        # Another retailer's key, and an admin key, cannot act for shop.
        assert call(channel, method, "shop", keys["globex"])[0] == grpc.StatusCode.PERMISSION_DENIED
        assert call(channel, method, "shop", keys["admin"])[0] == grpc.StatusCode.PERMISSION_DENIED
        # Naming another retailer: the same answer whether it exists (globex) or not (ghost).
        existing = call(channel, method, "globex", keys["shop"])
        missing = call(channel, method, "ghost", keys["shop"])
        assert existing == missing and existing[0] == grpc.StatusCode.PERMISSION_DENIED, \
            (existing, missing)
        code, details = call(channel, method, "shop", keys["shop"])
    assert code not in AUTH_CODES + NEVER, (code, details)


def test_malformed_retailer_is_invalid_argument_before_authorisation(secured) -> None:
    code, details = call(secured["channel"], FORECAST.methods_by_name["ListModels"],
                         "Not A Retailer!", secured["keys"]["shop"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "retailer" in details


def test_health_and_reflection_stay_open(secured) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = health_pb2_grpc.HealthStub(secured["channel"]).Check(health_pb2.HealthCheckRequest(),
                                                                 timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_refusals_are_counted_and_logged_with_the_request_id_never_the_key(secured) -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    rpc_log = logging.getLogger("forecast_gateway.rpc")
    rpc_log.addHandler(handler)
    previous_level = rpc_log.level
    rpc_log.setLevel(logging.INFO)
    before = AUTH_FAILURES.snapshot()
    revoked, globex = secured["keys"]["revoked"], secured["keys"]["globex"]
    try:
        list_models = FORECAST.methods_by_name["ListModels"]
        call(secured["channel"], list_models, "shop", revoked)
        call(secured["channel"], list_models, "shop", globex)
        call(secured["channel"], list_models, "shop", None)
    finally:
        rpc_log.removeHandler(handler)
        rpc_log.setLevel(previous_level)
    after = AUTH_FAILURES.snapshot()
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    assert grew == {("UNAUTHENTICATED", "invalid_key"): 1, ("PERMISSION_DENIED", "denied"): 1,
                    ("UNAUTHENTICATED", "missing"): 1}, grew
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    refused = [r for r in records if r.get("code") in ("UNAUTHENTICATED", "PERMISSION_DENIED")]
    assert len(refused) == 3 and all(r.get("request_id") for r in refused), records
    text = lines.getvalue()
    for key in (revoked, globex):
        assert key.split("_", 2)[2] not in text  # the secret half never reaches a log
    assert any(r.get("principal") == f"key:{globex.split('_')[1]}" for r in refused)


def test_admin_rpcs_manage_keys_end_to_end(secured) -> None:
    """An admin creates a retailer and issues, lists and revokes its keys over gRPC; the new key
    works at once and stops working as soon as it is revoked (the cache is evicted)."""
    admin_md = (("authorization", f"Bearer {secured['keys']['admin']}"),)
    stub = apb_grpc.AdminServiceStub(secured["channel"])
    created = stub.CreateRetailer(apb.CreateRetailerRequest(retailer="newco", key_name="ops"),
                                  metadata=admin_md, timeout=5)
    assert created.api_key.retailer == "newco" and created.secret.startswith("fgk_")
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRetailer(apb.CreateRetailerRequest(retailer="newco"), metadata=admin_md, timeout=5)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as info:
        stub.IssueApiKey(apb.IssueApiKeyRequest(retailer="ghost"), metadata=admin_md, timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    second = stub.IssueApiKey(apb.IssueApiKeyRequest(retailer="newco", name="ci"),
                              metadata=admin_md, timeout=5)
    listed = stub.ListApiKeys(apb.ListApiKeysRequest(retailer="newco"), metadata=admin_md, timeout=5)
    assert [k.key_id for k in listed.api_keys] == [created.api_key.key_id, second.api_key.key_id]
    assert all(created.secret not in str(k) for k in listed.api_keys)

    config = ClientConfig(target=secured["gw"].target, api_key=second.secret)
    with ForecastClient(config) as client:
        assert client.list_models("newco") == []  # works, and is now cached
        stub.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=second.api_key.key_id),
                          metadata=admin_md, timeout=5)
        with pytest.raises(ForecastClientError) as err:
            client.list_models("newco")
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    revoked = stub.ListApiKeys(apb.ListApiKeysRequest(retailer="newco", include_revoked=True),
                               metadata=admin_md, timeout=5)
    assert [k.HasField("revoke_time") for k in revoked.api_keys] == [False, True]


def test_no_auth_lets_any_caller_act_and_is_loopback_only(scripted_gateway, make_artifact) -> None:
    """--no-auth: every caller acts for any retailer (the loopback-only experiment mode)."""
    from forecast_gateway.config import load_config
    from forecast_gateway.dataplane import Tenant

    gw = scripted_gateway(auth=False)
    gw.server.service.models.import_model(Tenant("anyone"), make_artifact("v1"))
    with ForecastClient(ClientConfig(target=gw.target, api_key=None)) as client:
        assert [m.version for m in client.list_models("anyone")] == ["v1"]

    with pytest.raises(SystemExit):
        load_config(["--no-auth", "--host", "0.0.0.0"])
