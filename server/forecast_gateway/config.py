"""The gateway's configuration: read once from flags and FORECAST_GATEWAY_* variables, validated
once, then passed explicitly. A flag wins over its environment variable, which wins over the
default."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from forecasting.container.env import MAX_BODY_BYTES

ENV_PREFIX = "FORECAST_GATEWAY_"
MIB = 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    """Every setting of the gateway. Each has a flag `--name-with-dashes` and a variable
    `FORECAST_GATEWAY_NAME`."""

    host: str = "127.0.0.1"
    """Interface to listen on."""
    port: int = 50051
    """TCP port; 0 picks a free one (see `port_file`)."""
    data_dir: Path = Path("./var")
    """Root of the registry (registry.sqlite3) and the per-retailer storage."""
    backend: str = "local"
    """Where training and prediction run: `local` (embedded default) or `docker`."""
    port_file: Path | None = None
    """When set, the bound port is written here once the server is serving."""
    http_port: int = -1
    """TCP port of the HTTP/JSON face (docs/http_api.md) on `host`; 0 picks a free one (see
    `http_port_file`); -1 (the default) serves gRPC only."""
    http_port_file: Path | None = None
    """When set, the bound HTTP port is written here, before `port_file`."""
    log_level: str = "INFO"
    """Logging level."""
    log_format: str = "json"
    """`json` (one JSON object per line) or `text`."""
    max_message_bytes: int = 64 * MIB
    """Largest message the server receives or sends."""
    max_upload_bytes: int = 1024 * MIB
    """Largest dataset accepted by UploadDataset."""
    max_upload_chunk_bytes: int = 8 * MIB
    """Largest single UploadDatasetRequest chunk (clients send 4 MiB or less)."""
    max_predict_rows: int = 100_000
    """Most rows in one Predict request."""
    max_stream_chunk_rows: int = 200_000
    """Most rows in one PredictStream chunk."""
    predict_threads: int = 4
    """Threads that run predictions (CPU-bound work stays off the event loop)."""
    stream_window: int = 2
    """Chunks of one PredictStream forecast at the same time; answers keep their order and
    no more chunks than this are read ahead, so flow control still holds a fast client back."""
    control_threads: int = 4
    """Threads for registry and file work (uploads, validation, registry reads)."""
    training_slots: int = 1
    """Training jobs that run at the same time; others wait in a fair queue."""
    training_nice: int = 10
    """Niceness added to training processes so predictions keep their CPU share."""
    cancel_grace_s: float = 120.0
    """Seconds between SIGTERM and SIGKILL when a training job is cancelled (container contract)."""
    shutdown_grace_s: float = 30.0
    """Seconds in-flight calls get to finish on SIGTERM before they are cancelled."""
    model_cache_size: int = 8
    """Loaded models kept in memory (live models are loaded first when they go live)."""
    allow_file_uris: bool = False
    """Let Train read `file://` URIs on the gateway's disk (off: remote callers upload instead)."""
    docker_training_image: str = "retail-forecast-training:latest"
    """Docker backend: the image run as `IMAGE train`."""
    docker_inference_image: str = "retail-forecast-inference:latest"
    """Docker backend: the image run as `IMAGE serve`."""
    docker_cli: str = "docker"
    """Docker backend: the docker command."""
    docker_ping_timeout_s: float = 180.0
    """Docker backend: how long a new inference container may take to answer /ping."""
    docker_request_timeout_s: float = 70.0
    """Docker backend: one /invocations call (the contract's 60 s + slack)."""
    docker_drain_s: float = 5.0
    """Docker backend: a retired container is stopped this long after its last request
    (requests already routed to it finish first)."""
    docker_serve_workers: int = 1
    """Docker backend: gunicorn workers per inference container."""
    docker_max_body_bytes: int = MAX_BODY_BYTES
    """Docker backend: largest /invocations body sent (the chunking limit; at most the
    contract's 6 MB, lower it for serverless endpoints or tests)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if not -1 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be -1 (off) or 0..65535, got {self.http_port}")
        if self.log_format not in ("json", "text"):
            raise ValueError(f"log_format must be json or text, got {self.log_format!r}")
        for name in ("max_message_bytes", "max_upload_bytes", "max_upload_chunk_bytes",
                     "max_predict_rows", "max_stream_chunk_rows", "predict_threads", "stream_window",
                     "control_threads", "training_slots", "model_cache_size",
                     "docker_ping_timeout_s", "docker_request_timeout_s", "docker_drain_s",
                     "docker_serve_workers", "docker_max_body_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_upload_chunk_bytes > self.max_message_bytes:
            raise ValueError("max_upload_chunk_bytes cannot exceed max_message_bytes")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The `forecast-gateway` argument parser."""
    parser = argparse.ArgumentParser(
        prog="forecast-gateway",
        description="Serve the forecastapi.v1 gRPC API (training, models, predictions). "
        f"Every flag can also be set with {ENV_PREFIX}<NAME> (e.g. {ENV_PREFIX}PORT=50051).",
    )
    defaults = GatewayConfig()
    for f in fields(GatewayConfig):
        default = getattr(defaults, f.name)
        env = ENV_PREFIX + f.name.upper()
        doc = _DOCS.get(f.name, "")
        if isinstance(default, bool):
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{doc} (env {env}; default {default})")
        else:
            parser.add_argument(_flag(f.name), dest=f.name, default=None, metavar=f.name.upper(),
                                help=f"{doc} (env {env}; default {default})")
    return parser


_DOCS = {
    "host": "interface to listen on", "port": "TCP port, 0 for any free port",
    "data_dir": "registry and per-retailer storage root", "backend": "local | docker",
    "port_file": "write the bound port to this file once serving",
    "http_port": "HTTP/JSON port, 0 for any free port, -1 for none",
    "http_port_file": "write the bound HTTP port to this file once serving",
    "log_level": "DEBUG | INFO | WARNING | ERROR", "log_format": "json | text",
    "max_message_bytes": "largest gRPC message", "max_upload_bytes": "largest uploaded dataset",
    "max_upload_chunk_bytes": "largest upload chunk", "max_predict_rows": "most rows per Predict",
    "max_stream_chunk_rows": "most rows per PredictStream chunk",
    "predict_threads": "prediction worker threads",
    "stream_window": "chunks of one PredictStream forecast at once", "control_threads": "registry/file threads",
    "training_slots": "concurrent training jobs", "training_nice": "niceness of training processes",
    "cancel_grace_s": "SIGTERM->SIGKILL delay for cancelled training",
    "shutdown_grace_s": "drain time on SIGTERM", "model_cache_size": "models kept loaded",
    "allow_file_uris": "let Train read file:// URIs",
    "docker_training_image": "docker backend: training image",
    "docker_inference_image": "docker backend: inference image",
    "docker_cli": "docker backend: the docker command",
    "docker_ping_timeout_s": "docker backend: wait for a new container's /ping",
    "docker_request_timeout_s": "docker backend: timeout of one /invocations call",
    "docker_drain_s": "docker backend: delay before stopping a retired container",
    "docker_serve_workers": "docker backend: gunicorn workers per inference container",
    "docker_max_body_bytes": "docker backend: largest /invocations body (at most 6 MiB)",
}


def load_config(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> GatewayConfig:
    """Flags, then FORECAST_GATEWAY_* variables, then defaults. Raises SystemExit(2) on bad values."""
    environ = dict(os.environ if environ is None else environ)
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = GatewayConfig()
    values: dict[str, object] = {}
    for f in fields(GatewayConfig):
        raw = getattr(args, f.name)
        source = _flag(f.name)
        if raw is None and (ENV_PREFIX + f.name.upper()) in environ:
            raw = environ[ENV_PREFIX + f.name.upper()]
            source = ENV_PREFIX + f.name.upper()
        if raw is None:
            continue
        default = getattr(defaults, f.name)
        try:
            if isinstance(raw, bool):
                value: object = raw
            elif isinstance(default, bool):
                value = _parse_bool(str(raw))
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            elif f.name in ("data_dir", "port_file", "http_port_file"):
                value = Path(str(raw))
            else:
                value = str(raw)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
        values[f.name] = value
    try:
        return GatewayConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable
