"""TLS and mutual TLS on the gateway with certificates made at test time, the SDK's and the
CLI's TLS options against it, and server reflection (v1 and v1alpha, single methods, off)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from certs import TestCA
from forecast_client import (
    ClientConfig,
    ForecastClient,
    ForecastClientError,
    RetryPolicy,
    TlsConfig,
)
from forecast_gateway.testing.process import GatewayProcess
from grpc_reflection.v1alpha import reflection_pb2


@pytest.fixture()
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "pki")


def _tls(ca: TestCA, client=None, server_name: str | None = None) -> TlsConfig:
    return TlsConfig(root_certificates=ca.cert.read_bytes(),
                     certificate_chain=client.cert.read_bytes() if client else None,
                     private_key=client.key.read_bytes() if client else None,
                     server_name_override=server_name)


def _config(target: str, **kwargs) -> ClientConfig:
    return ClientConfig(target=target, retry=RetryPolicy(max_attempts=1), **kwargs)


def _code(fn, *args) -> grpc.StatusCode:
    with pytest.raises(ForecastClientError) as info:
        fn(*args)
    return info.value.code


def test_tls_handshake_and_a_plaintext_client_refused(scripted_gateway, make_artifact, ca) -> None:
    server = ca.issue("gateway", server=True)
    gw = scripted_gateway(tls_cert=server.cert, tls_key=server.key)
    key = gw.api_key("shop")
    for name in (None, "localhost"):  # the certificate's IP SAN, then its DNS name
        with ForecastClient(_config(gw.target, tls=_tls(ca, server_name=name),
                                         api_key=key)) as client:
            assert client.list_models("shop") == []
    with ForecastClient(_config(gw.target, api_key=key)) as plaintext:
        assert _code(plaintext.list_models, "shop") == grpc.StatusCode.UNAVAILABLE
    other_ca = TestCA(ca.folder / "other", "other-ca")
    with ForecastClient(_config(gw.target, tls=_tls(other_ca), api_key=key)) as client:
        assert _code(client.list_models, "shop") == grpc.StatusCode.UNAVAILABLE  # untrusted


def test_mtls_client_certificate_acts_for_its_retailer(scripted_gateway, ca) -> None:
    server = ca.issue("gateway", server=True)
    gw = scripted_gateway(tls_cert=server.cert, tls_key=server.key, tls_client_ca=ca.cert)
    gw.api_key("shop")  # creates retailer shop
    shop = ca.issue("shop", server=False)
    with ForecastClient(_config(gw.target, tls=_tls(ca, shop), api_key=None)) as client:
        assert client.list_models("shop") == []  # the certificate alone authenticates
        assert _code(client.list_models, "globex") == grpc.StatusCode.PERMISSION_DENIED
    # A bearer key, when sent, is the credential (here globex's key over shop's certificate).
    globex_key = gw.api_key("globex")
    with ForecastClient(_config(gw.target, tls=_tls(ca, shop),
                                     api_key=globex_key)) as client:
        assert client.list_models("globex") == []
        assert _code(client.list_models, "shop") == grpc.StatusCode.PERMISSION_DENIED
    # No client certificate, or one from another CA: the handshake fails.
    with ForecastClient(_config(gw.target, tls=_tls(ca), api_key=globex_key)) as client:
        assert _code(client.list_models, "globex") == grpc.StatusCode.UNAVAILABLE
    stranger = TestCA(ca.folder / "other", "other-ca").issue("shop", server=False)
    with ForecastClient(_config(gw.target, tls=_tls(ca, stranger),
                                     api_key=None)) as client:
        assert _code(client.list_models, "shop") == grpc.StatusCode.UNAVAILABLE
    # A certificate whose CN is not a retailer id authenticates nobody.
    odd = ca.issue("Ops Team", server=False)
    with ForecastClient(_config(gw.target, tls=_tls(ca, odd), api_key=None)) as client:
        assert _code(client.list_models, "shop") == grpc.StatusCode.UNAUTHENTICATED


def _reflect(channel: grpc.Channel, version: str, request: reflection_pb2.ServerReflectionRequest):
    stream = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    return next(iter(stream(iter([request]), timeout=5)))


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_services_and_describes_single_methods(scripted_gateway, version) -> None:
    gw = scripted_gateway()
    with grpc.insecure_channel(gw.target) as channel:  # open: no credential
        listed = _reflect(channel, version, reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {s.name for s in listed.list_services_response.service}
        assert {"forecastapi.v1.ForecastService", "forecastapi.v1.AdminService",
                "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection"} <= names
        for symbol, file in [("forecastapi.v1.ForecastService.Predict", "forecast_service.proto"),
                             ("forecastapi.v1.AdminService.RevokeApiKey", "admin_service.proto"),
                             ("forecastapi.v1.PredictRequest", "forecast_service.proto")]:
            answer = _reflect(channel, version,
                              reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
            assert answer.WhichOneof("message_response") == "file_descriptor_response", symbol
            from google.protobuf import descriptor_pb2

            first = descriptor_pb2.FileDescriptorProto.FromString(
                answer.file_descriptor_response.file_descriptor_proto[0])
            assert first.name.endswith(file)
        missing = _reflect(channel, version, reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="forecastapi.v1.ForecastService.NoSuchMethod"))
        assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_reflection_can_be_switched_off(scripted_gateway) -> None:
    gw = scripted_gateway(reflection=False)
    with grpc.insecure_channel(gw.target) as channel, pytest.raises(grpc.RpcError) as info:
        _reflect(channel, "v1", reflection_pb2.ServerReflectionRequest(list_services=""))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.slow
def test_gateway_process_tls_flags_and_the_cli(tmp_path: Path, ca) -> None:
    """`forecast-gateway --tls-cert/--tls-key/--tls-client-ca` and the CLI's --tls-* and
    --api-key flags, as real processes."""
    server = ca.issue("gateway", server=True)
    client = ca.issue("tls-co", server=False)
    gw = GatewayProcess(tmp_path / "data", args=(
        "--tls-cert", str(server.cert), "--tls-key", str(server.key),
        "--tls-client-ca", str(ca.cert)))
    key = gw.api_key("tls-co")  # offline, before the gateway starts
    with gw:
        env = {k: v for k, v in os.environ.items() if k != "FORECAST_API_KEY"}

        def forecast(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "forecast_client.cli", "--target", gw.target,
                 "--tls-ca", str(ca.cert), "--tls-cert", str(client.cert), "--tls-key",
                 str(client.key), *args], env=env, capture_output=True, text=True, timeout=60,
                check=False)

        ok = forecast("--api-key", key, "models", "--retailer", "tls-co")
        assert ok.returncode == 0, ok.stderr
        by_certificate = forecast("models", "--retailer", "tls-co")
        assert by_certificate.returncode == 0, by_certificate.stderr
        refused = forecast("models", "--retailer", "acme")
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert key not in refused.stderr
    assert key not in gw.log()


def test_tls_flags_are_checked_at_start_up(tmp_path: Path, ca, capsys) -> None:
    from forecast_gateway.config import load_config

    server = ca.issue("gateway", server=True)
    config = load_config(["--tls-cert", str(server.cert), "--tls-key", str(server.key),
                          "--tls-client-ca", str(ca.cert)], environ={})
    assert config.tls_cert == server.cert and config.tls_client_ca == ca.cert
    for argv, words in [(["--tls-cert", str(server.cert)], "go together"),
                        (["--tls-client-ca", str(ca.cert)], "needs --tls-cert"),
                        (["--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(server.key)],
                         "no such file")]:
        with pytest.raises(SystemExit) as info:
            load_config(argv, environ={})
        assert info.value.code == 2 and words in capsys.readouterr().err, argv
