"""The gateway's TLS: server credentials from `--tls-cert`/`--tls-key`, and with
`--tls-client-ca` mutual TLS (clients must present a certificate that CA signed; its subject
CN can then stand for a retailer, see `auth.authenticator`)."""

from __future__ import annotations

import grpc

from forecast_gateway.config import GatewayConfig


def server_credentials(config: GatewayConfig) -> grpc.ServerCredentials | None:
    """TLS credentials for the listening port, or None for plaintext (no certificate set)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
