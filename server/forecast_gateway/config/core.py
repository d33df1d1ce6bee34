"""The gateway's own settings, whatever the backend: where it listens and stores, its fleet,
limits, threads, shutdown, file and export access, auth and TLS. Each is declared once
(`declare.setting`); `validate` holds the checks that join several of them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from forecast_gateway.config.declare import (
    database_url,
    existing_file,
    is_loopback,
    not_negative,
    one_of,
    port,
    port_or_off,
    positive,
    s3_uri,
    setting,
)

MIB = 1024 * 1024


def log_level(value: str) -> str | None:
    return one_of("DEBUG", "INFO", "WARNING", "ERROR")(value.upper())


@dataclass(frozen=True)
class CoreConfig:
    """Every backend's settings."""

    TITLE: ClassVar[str] = "gateway"

    host: str = setting("127.0.0.1", "Interface to listen on.")
    port: int = setting(50051, "TCP port; 0 picks a free one (see `port_file`).", check=port)
    data_dir: Path = setting(
        Path("./var"),
        "Root of the per-retailer storage, and of the embedded database (registry.sqlite3).")
    database_url: str = setting(
        "",
        "The store's database: empty for the embedded SQLite file in `data_dir`; "
        "`postgresql://user:password@host:5432/db` for a fleet of gateways (docs/fleet.md).",
        check=database_url)
    artifact_store: str = setting(
        "",
        "Where published model versions and uploaded datasets live: empty for `data_dir`; "
        "`s3://bucket/prefix` for S3, which every replica of a fleet reads (docs/artifact.md).",
        check=s3_uri)
    gateway_id: str = setting(
        "",
        "This gateway's id in the database (job leases, heartbeats); empty: host-pid-random.")
    lease_s: float = setting(
        15.0,
        "Seconds a gateway's hold on a training job lasts without a renewal: a gateway that dies "
        "loses its jobs (they are failed with the reason) this long after its last renewal.",
        check=positive)
    fleet_poll_s: float = setting(
        0.5,
        "How often a gateway looks in the database for queued jobs, cancels asked for and live "
        "switches made on other replicas.",
        check=positive)
    backend: str = setting(
        "local",
        "Where training and prediction run: `local` (embedded default), `docker` or `sagemaker`.",
        check=one_of("local", "docker", "sagemaker"))
    port_file: Path | None = setting(
        None,
        "When set, the bound port is written here once the server is serving.")
    http_port: int = setting(
        -1,
        "TCP port of the HTTP/JSON face (docs/http_api.md) on `host`; 0 picks a free one (see "
        "`http_port_file`); -1 (the default) serves gRPC only.",
        check=port_or_off)
    http_port_file: Path | None = setting(
        None,
        "When set, the bound HTTP port is written here, before `port_file`.")
    metrics_port: int = setting(
        -1,
        "TCP port of the Prometheus metrics endpoint (`/metrics`) on `host`; 0 picks a free one "
        "(see `metrics_port_file`); -1 (the default) serves none.",
        check=port_or_off)
    metrics_port_file: Path | None = setting(
        None,
        "When set, the bound metrics port is written here once serving.")
    monitor_max_series: int = setting(
        1000,
        "Series per retailer whose served forecasts are recorded for live accuracy (a stable sample "
        "of the model's series; 0 records none).",
        check=not_negative)
    log_level: str = setting(
        "INFO",
        "Logging level.",
        check=log_level)
    log_format: str = setting(
        "json",
        "`json` (one JSON object per line) or `text`.",
        check=one_of("json", "text"))
    max_message_bytes: int = setting(
        64 * MIB,
        "Largest message the server receives or sends.",
        check=positive)
    max_upload_bytes: int = setting(
        1024 * MIB,
        "Largest dataset accepted by UploadDataset.",
        check=positive)
    max_upload_chunk_bytes: int = setting(
        8 * MIB,
        "Largest single UploadDatasetRequest chunk (clients send 4 MiB or less).",
        check=positive)
    max_predict_rows: int = setting(100_000, "Most rows in one Predict request.", check=positive)
    max_stream_chunk_rows: int = setting(
        200_000,
        "Most rows in one PredictStream chunk.",
        check=positive)
    predict_threads: int = setting(
        min(4, os.cpu_count() or 1),
        "Threads that forecast PredictStream chunks: one per core (at most 4), so bulk streams "
        "cannot crowd the unary threads and the event loop out of the CPU (docs/benchmarks.md).",
        check=positive)
    unary_predict_threads: int = setting(
        2,
        "Threads that answer unary Predict calls, apart from `predict_threads` (which forecast "
        "PredictStream chunks), so one small forecast never queues behind bulk streams.",
        check=positive)
    wide_predict_threads: int = setting(
        os.cpu_count() or 1,
        "Threads a large forecast (Predict, PredictStream chunk, Forecast) splits its series across "
        "when it is the only forecast in flight; otherwise each runs on its own (1: never).",
        check=positive)
    wide_predict_series: int = setting(
        512,
        "Series (rows per forecast day) from which a forecast splits across `wide_predict_threads`; "
        "below it the split costs more than it saves (docs/benchmarks.md).",
        check=positive)
    stream_window: int = setting(
        2,
        "Chunks of one PredictStream forecast at the same time; answers keep their order and no "
        "more chunks than this are read ahead, so flow control still holds a fast client back.",
        check=positive)
    control_threads: int = setting(
        4,
        "Threads for registry and file work (uploads, validation, registry reads).",
        check=positive)
    training_slots: int = setting(
        1,
        "Training jobs that run at the same time; others wait in a fair queue.",
        check=positive)
    training_nice: int = setting(
        10,
        "Niceness added to training processes so predictions keep their CPU share.")
    cancel_grace_s: float = setting(
        120.0,
        "Seconds between SIGTERM and SIGKILL when a training job is cancelled (container contract).")
    shutdown_grace_s: float = setting(
        30.0,
        "Seconds in-flight calls get to finish on SIGTERM before they are cancelled.",
        check=not_negative)
    http_keepalive_s: float = setting(
        15.0,
        "HTTP/JSON face: seconds a connection may go without a complete request head (idle between "
        "requests, or sending one slowly), and a request body without a byte, before it is closed.",
        check=positive)
    shutdown_drain_s: float = setting(
        1.0,
        "Seconds the gateway still serves on SIGTERM while its health reports NOT_SERVING, so "
        "health-checking clients (the SDK's round-robin channel) and load balancers move new calls "
        "to other replicas before it refuses them (docs/fleet.md).",
        check=not_negative)
    model_cache_size: int = setting(
        8,
        "Loaded models kept in memory (live models are loaded first when they go live).",
        check=positive)
    allow_file_uris: bool = setting(
        False,
        "Let Train read `file://` URIs on the gateway's disk (off: remote callers upload instead); "
        "needs `file_uri_root`.")
    file_uri_root: Path | None = setting(
        None,
        "With `allow_file_uris`: a retailer's Train may read only files under "
        "`<file_uri_root>/<retailer>/` (symbolic links resolved).")
    export_store: str = setting(
        "",
        "Where ExportForecasts may write to S3: `s3://bucket/prefix` lets retailer R write files "
        "under `s3://bucket/prefix/R/` only; empty: no s3:// export destinations "
        "(docs/security.md).",
        check=s3_uri)
    upload_threads: int = setting(
        2,
        "Threads that receive and validate uploads (and file:// datasets), apart from the control "
        "threads, so a large or hostile upload never delays control calls.",
        check=positive)
    auth: bool = setting(
        True,
        "Require a credential on every RPC but health and reflection (docs/security.md). `--no- "
        "auth` is accepted only with a loopback `host`.")
    auth_cache_s: float = setting(
        10.0,
        "Seconds a verified API key stays cached (an offline revocation takes this long).",
        check=not_negative)
    tls_cert: Path | None = setting(
        None,
        "PEM server certificate (chain); with `tls_key`, the gateway speaks only TLS.",
        check=existing_file)
    tls_key: Path | None = setting(None, "PEM private key of `tls_cert`.", check=existing_file)
    tls_client_ca: Path | None = setting(
        None,
        "PEM CA bundle; when set, clients must present a certificate it signed (mTLS).",
        check=existing_file)
    reflection: bool = setting(True, "Serve gRPC server reflection (v1 and v1alpha).")

    def validate(self) -> None:
        """The checks that join several settings (each setting's own ran first)."""
        if self.fleet_poll_s * 3 > self.lease_s:
            raise ValueError("lease_s must be at least 3 x fleet_poll_s (a lease is renewed "
                             "every poll)")
        if self.max_upload_chunk_bytes > self.max_message_bytes:
            raise ValueError("max_upload_chunk_bytes cannot exceed max_message_bytes")
        if self.allow_file_uris and self.file_uri_root is None:
            raise ValueError("allow_file_uris needs file_uri_root (each retailer reads only "
                             "<file_uri_root>/<retailer>/)")
        if not self.auth and not is_loopback(self.host):
            raise ValueError(f"--no-auth is accepted only with a loopback --host (127.0.0.1, ::1 "
                             f"or localhost), not {self.host!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
        if self.tls_cert is not None and self.http_port >= 0:
            raise ValueError("--http-port cannot be combined with --tls-cert: the HTTP/JSON face "
                             "speaks plain HTTP (put it behind a TLS proxy; docs/http_api.md)")
