"""Typed client configuration: where to connect, TLS, retries and timeouts.

Every class is a frozen dataclass, so a configuration is built once, validated once and passed
around without anyone changing it underneath.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

#: The gRPC service name, as written in protos/forecastapi/v1/forecast_service.proto.
SERVICE_NAME = "forecastapi.v1.ForecastService"
#: The monitoring service's name (protos/forecastapi/v1/monitoring_service.proto).
MONITORING_SERVICE_NAME = "forecastapi.v1.MonitoringService"
#: `ClientConfig.load_balancing` values (gRPC's built-in policies).
LOAD_BALANCING = ("round_robin", "pick_first")
#: Default gateway address (`forecast-gateway` listens here by default).
DEFAULT_TARGET = "127.0.0.1:50051"
#: Messages up to this size are accepted by default (the gateway's default limit too).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The environment variable `ClientConfig.target` defaults to (the CLI's too).
TARGET_ENV = "FORECAST_TARGET"
#: The environment variable `ClientConfig.api_key` defaults to.
API_KEY_ENV = "FORECAST_API_KEY"


def target_from_env() -> str:
    """The gateway address in FORECAST_TARGET (as the CLI reads it), or `DEFAULT_TARGET`."""
    return os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET


def api_key_from_env() -> str | None:
    """The API key in FORECAST_API_KEY, or None when it is unset or empty."""
    return os.environ.get(API_KEY_ENV, "").strip() or None


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings. Leave `ClientConfig.tls` as None for a plaintext channel (loopback, tests)."""

    root_certificates: bytes | None = None
    """PEM-encoded root certificates to trust (the CA that signed the gateway's certificate);
    None uses gRPC's default roots."""
    private_key: bytes | None = None
    """PEM-encoded client private key, for mutual TLS (a gateway started with
    --tls-client-ca); needs `certificate_chain` too."""
    certificate_chain: bytes | None = None
    """PEM-encoded client certificate chain, for mutual TLS; needs `private_key` too."""
    server_name_override: str | None = None
    """Check the server certificate against this name instead of the target host (testing only)."""

    def __post_init__(self) -> None:
        if (self.private_key is None) != (self.certificate_chain is None):
            raise ValueError("TlsConfig: private_key and certificate_chain go together")

    @classmethod
    def from_files(cls, root_ca: str | None = None, cert: str | None = None,
                   key: str | None = None, server_name: str | None = None) -> TlsConfig:
        """Read the PEM files by path (any may be None); ValueError names a file that cannot be
        read."""
        def read(path: str | None, what: str) -> bytes | None:
            if not path:
                return None
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            except OSError as exc:
                raise ValueError(f"cannot read the {what} {path}: {exc.strerror}") from None

        return cls(root_certificates=read(root_ca, "TLS root CA file"),
                   certificate_chain=read(cert, "TLS client certificate"),
                   private_key=read(key, "TLS client key"),
                   server_name_override=server_name or None)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff, carried out by gRPC itself through the service config.

    gRPC retries a call only while no response has reached the caller, so a retried stream never
    duplicates answers. Every RPC is retried: `Train` too, because the SDK gives each Train a
    request id and the gateway starts one job per id however often it arrives. On top of this,
    `ForecastClient` retries the calls that are safe to repeat (reads, Predict, Forecast, Train,
    SetLiveModel) when UNAVAILABLE arrives after gRPC gave up, for instance when a replica of a
    fleet dies mid-call, or CANCELLED, which a stopping gateway answers to calls it had received
    but not started (the SDK never cancels a unary call itself), until the call's deadline
    (docs/fleet.md).
    """

    max_attempts: int = 5
    """Attempts in all, including the first (gRPC caps this at 5); 1 turns retries off."""
    initial_backoff_s: float = 0.2
    """Wait before the first retry, in seconds (randomised by gRPC between 0 and this value)."""
    max_backoff_s: float = 5.0
    """Longest wait between two attempts, in seconds."""
    backoff_multiplier: float = 2.0
    """Growth of the wait after each retry."""
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)
    """Status code names that trigger a retry."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 5:
            raise ValueError("RetryPolicy.max_attempts must be between 1 and 5")
        if self.initial_backoff_s <= 0 or self.max_backoff_s <= 0 or self.backoff_multiplier <= 0:
            raise ValueError("RetryPolicy backoff values must be positive")


@dataclass(frozen=True)
class Timeouts:
    """Per-call deadlines in seconds. None means no deadline."""

    connect_s: float = 10.0
    """How long `ForecastClient.wait_until_ready` waits for the channel to connect."""
    unary_s: float | None = 30.0
    """Deadline of small calls (jobs, models, metrics, Train)."""
    predict_s: float | None = 60.0
    """Deadline of a unary Predict call."""
    upload_s: float | None = 3600.0
    """Deadline of a whole UploadDataset call."""
    stream_s: float | None = None
    """Deadline of a bulk PredictStream call and of WatchTrainingJob (None: as long as it takes)."""


@dataclass(frozen=True)
class ClientConfig:
    """Everything `ForecastClient` needs to reach a gateway."""

    target: str = field(default_factory=target_from_env)
    """The gateway address (default: FORECAST_TARGET, else 127.0.0.1:50051): HOST:PORT, or a gRPC name such as ``dns:///gateway:50051`` (every
    address the name resolves to) or ``ipv4:10.0.0.1:50051,10.0.0.2:50051``."""
    load_balancing: str = "round_robin"
    """How calls spread over the target's addresses: "round_robin" (every replica of a fleet,
    skipping those that are down) or "pick_first" (one address until it fails)."""
    tls: TlsConfig | None = None
    """TLS settings; None for plaintext."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retry policy for UNAVAILABLE (and any other listed code)."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    """Per-call deadlines."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest message the client sends or receives."""
    api_key: str | None = field(default_factory=api_key_from_env)
    """The API key sent as `authorization: Bearer <key>` with every call. Defaults to the
    FORECAST_API_KEY environment variable; None sends none (an mTLS client certificate, or a
    gateway running with --no-auth). It is never logged or put in error messages."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Extra metadata sent with every call, e.g. (("x-tenant-note", "..."),)."""
    wait_for_ready: bool = False
    """Queue calls while the gateway is unreachable instead of failing fast with UNAVAILABLE."""

    def __post_init__(self) -> None:
        if not self.target or ":" not in self.target or any(c.isspace() for c in self.target):
            raise ValueError(f"ClientConfig.target must be HOST:PORT or a gRPC name such as "
                             f"dns:///HOST:PORT, got {self.target!r}")
        if self.load_balancing not in LOAD_BALANCING:
            raise ValueError(f"ClientConfig.load_balancing must be one of "
                             f"{', '.join(LOAD_BALANCING)}, got {self.load_balancing!r}")
        if self.max_message_bytes <= 0:
            raise ValueError("ClientConfig.max_message_bytes must be positive")
        if self.api_key is not None and (not self.api_key or any(
                c.isspace() or not c.isprintable() for c in self.api_key)):
            raise ValueError("ClientConfig.api_key must be a non-empty key without spaces")

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        key = "None" if self.api_key is None else "'***'"
        return (f"ClientConfig(target={self.target!r}, load_balancing={self.load_balancing!r}, "
                f"tls={self.tls!r}, api_key={key}, "
                f"retry={self.retry!r}, timeouts={self.timeouts!r}, "
                f"max_message_bytes={self.max_message_bytes}, wait_for_ready={self.wait_for_ready})")

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries: the API key (when set), then `metadata`."""
        auth = (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()
        return (*auth, *self.metadata)

    def service_config_json(self) -> str:
        """The gRPC service config (JSON) that implements `retry` and `load_balancing`."""
        r = self.retry
        retry_policy = {
            "maxAttempts": r.max_attempts,
            "initialBackoff": f"{r.initial_backoff_s:.3f}s",
            "maxBackoff": f"{r.max_backoff_s:.3f}s",
            "backoffMultiplier": r.backoff_multiplier,
            "retryableStatusCodes": list(r.retryable_status_codes),
        }
        # Every method of both services (Train carries its request id, docs/fleet.md).
        retrying: dict[str, object] = {
            "name": [{"service": SERVICE_NAME}, {"service": MONITORING_SERVICE_NAME}]}
        if r.max_attempts > 1:  # gRPC rejects a retryPolicy with maxAttempts < 2
            retrying["retryPolicy"] = retry_policy
        config = {
            "loadBalancingConfig": [{self.load_balancing: {}}],
            # round_robin skips a replica whose grpc.health.v1 status is NOT_SERVING: a
            # gateway that is stopping says so before it refuses calls (docs/fleet.md).
            "healthCheckConfig": {"serviceName": ""},
            "methodConfig": [retrying],
        }
        return json.dumps(config)

    def channel_options(self) -> list[tuple[str, object]]:
        """Channel options: message size limits, retries and keepalive."""
        opts: list[tuple[str, object]] = [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self.service_config_json()),
            ("grpc.keepalive_time_ms", 60_000),
        ]
        if self.tls is not None and self.tls.server_name_override:
            opts.append(("grpc.ssl_target_name_override", self.tls.server_name_override))
        return opts
