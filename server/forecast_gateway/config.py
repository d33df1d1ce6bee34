"""The gateway's configuration: read once from flags and FORECAST_GATEWAY_* variables, validated
once, then passed explicitly. A flag wins over its environment variable, which wins over the
default."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
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
    """Root of the per-retailer storage, and of the embedded database (registry.sqlite3)."""
    database_url: str = ""
    """The store's database: empty for the embedded SQLite file in `data_dir`;
    `postgresql://user:password@host:5432/db` for a fleet of gateways (docs/fleet.md)."""
    artifact_store: str = ""
    """Where published model versions and uploaded datasets live: empty for `data_dir`;
    `s3://bucket/prefix` for S3, which every replica of a fleet reads (docs/artifact.md)."""
    gateway_id: str = ""
    """This gateway's id in the database (job leases, heartbeats); empty: host-pid-random."""
    lease_s: float = 15.0
    """Seconds a gateway's hold on a training job lasts without a renewal: a gateway that dies
    loses its jobs (they are failed with the reason) this long after its last renewal."""
    fleet_poll_s: float = 0.5
    """How often a gateway looks in the database for queued jobs, cancels asked for and live
    switches made on other replicas."""
    backend: str = "local"
    """Where training and prediction run: `local` (embedded default), `docker` or `sagemaker`."""
    port_file: Path | None = None
    """When set, the bound port is written here once the server is serving."""
    http_port: int = -1
    """TCP port of the HTTP/JSON face (docs/http_api.md) on `host`; 0 picks a free one (see
    `http_port_file`); -1 (the default) serves gRPC only."""
    http_port_file: Path | None = None
    """When set, the bound HTTP port is written here, before `port_file`."""
    metrics_port: int = -1
    """TCP port of the Prometheus metrics endpoint (`/metrics`) on `host`; 0 picks a free one
    (see `metrics_port_file`); -1 (the default) serves none."""
    metrics_port_file: Path | None = None
    """When set, the bound metrics port is written here once serving."""
    monitor_max_series: int = 1000
    """Series per retailer whose served forecasts are recorded for live accuracy (a stable
    sample of the model's series; 0 records none)."""
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
    predict_threads: int = min(4, os.cpu_count() or 1)
    """Threads that forecast PredictStream chunks: one per core (at most 4), so bulk streams
    cannot crowd the unary threads and the event loop out of the CPU (docs/benchmarks.md)."""
    unary_predict_threads: int = 2
    """Threads that answer unary Predict calls, apart from `predict_threads` (which forecast
    PredictStream chunks), so one small forecast never queues behind bulk streams."""
    wide_predict_threads: int = os.cpu_count() or 1
    """Threads a large forecast (Predict, PredictStream chunk, Forecast) splits its series
    across when it is the only forecast in flight; otherwise each runs on its own (1: never)."""
    wide_predict_series: int = 512
    """Series (rows per forecast day) from which a forecast splits across
    `wide_predict_threads`; below it the split costs more than it saves (docs/benchmarks.md)."""
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
    http_keepalive_s: float = 15.0
    """HTTP/JSON face: seconds a connection may go without a complete request head (idle
    between requests, or sending one slowly), and a request body without a byte, before it is
    closed."""
    shutdown_drain_s: float = 1.0
    """Seconds the gateway still serves on SIGTERM while its health reports NOT_SERVING, so
    health-checking clients (the SDK's round-robin channel) and load balancers move new calls
    to other replicas before it refuses them (docs/fleet.md)."""
    model_cache_size: int = 8
    """Loaded models kept in memory (live models are loaded first when they go live)."""
    allow_file_uris: bool = False
    """Let Train read `file://` URIs on the gateway's disk (off: remote callers upload instead);
    needs `file_uri_root`."""
    file_uri_root: Path | None = None
    """With `allow_file_uris`: a retailer's Train may read only files under
    `<file_uri_root>/<retailer>/` (symbolic links resolved)."""
    export_store: str = ""
    """Where ExportForecasts may write to S3: `s3://bucket/prefix` lets retailer R write files
    under `s3://bucket/prefix/R/` only; empty: no s3:// export destinations (docs/security.md)."""
    upload_threads: int = 2
    """Threads that receive and validate uploads (and file:// datasets), apart from the control
    threads, so a large or hostile upload never delays control calls."""
    auth: bool = True
    """Require a credential on every RPC but health and reflection (docs/security.md).
    `--no-auth` is accepted only with a loopback `host`."""
    auth_cache_s: float = 10.0
    """Seconds a verified API key stays cached (an offline revocation takes this long)."""
    tls_cert: Path | None = None
    """PEM server certificate (chain); with `tls_key`, the gateway speaks only TLS."""
    tls_key: Path | None = None
    """PEM private key of `tls_cert`."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."""
    reflection: bool = True
    """Serve gRPC server reflection (v1 and v1alpha)."""
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
    aws_region: str = ""
    """AWS region of the S3 and SageMaker clients (empty: the AWS default chain's)."""
    aws_endpoint_url: str = ""
    """One endpoint URL for every AWS client (a moto server in tests; empty: AWS itself)."""
    aws_max_attempts: int = 8
    """Attempts per AWS call, throttling included (botocore's adaptive retry mode)."""
    sagemaker_bucket: str = ""
    """SageMaker backend: the S3 bucket of the storage layout (required)."""
    sagemaker_prefix: str = ""
    """SageMaker backend: the key prefix under the bucket (`s3://bucket/prefix/raw/...`)."""
    sagemaker_role_arn: str = ""
    """SageMaker backend: the execution role of training jobs and models (required on AWS)."""
    sagemaker_training_image: str = "retail-forecast-training:latest"
    """SageMaker backend: the training image URI (ECR on AWS)."""
    sagemaker_inference_image: str = "retail-forecast-inference:latest"
    """SageMaker backend: the inference image URI (ECR on AWS)."""
    sagemaker_instance_type: str = "ml.m5.large"
    """SageMaker backend: the training instance type."""
    sagemaker_instance_count: int = 1
    """SageMaker backend: training instances per job."""
    sagemaker_volume_size_gb: int = 30
    """SageMaker backend: the training instance's EBS volume."""
    sagemaker_max_runtime_s: int = 86400
    """SageMaker backend: a training job's StoppingCondition.MaxRuntimeInSeconds."""
    sagemaker_serverless_memory_mb: int = 2048
    """SageMaker backend: a serverless endpoint's memory (1024..6144, steps of 1024; see
    docs/sagemaker.md, "Serverless memory")."""
    sagemaker_serverless_concurrency: int = 5
    """SageMaker backend: a serverless endpoint's MaxConcurrency."""
    sagemaker_endpoint_instance_type: str = ""
    """SageMaker backend: an instance type for real-time endpoints (empty: serverless)."""
    sagemaker_endpoint_instance_count: int = 1
    """SageMaker backend: instances of a real-time endpoint."""
    sagemaker_train_with: str = "training-job"
    """SageMaker backend: `training-job` (CreateTrainingJob) or `pipeline`
    (StartPipelineExecution of the clean/train/evaluate pipeline)."""
    sagemaker_local_mode: bool = False
    """SageMaker backend: run jobs and endpoints through the SageMaker SDK's local mode (real
    images in local docker containers, S3 at `aws_endpoint_url`)."""
    sagemaker_parallel_jobs: int = 8
    """SageMaker backend: training jobs followed at once (more wait in the fair queue)."""
    sagemaker_poll_max_s: float = 30.0
    """SageMaker backend: the longest pause between two Describe calls (backoff from 1 s)."""
    sagemaker_endpoint_timeout_s: float = 1800.0
    """SageMaker backend: how long an endpoint may take to become InService."""
    sagemaker_invoke_concurrency: int = 4
    """SageMaker backend: InvokeEndpoint calls in flight for one bulk request."""
    sagemaker_traffic_shift: str = ""
    """SageMaker backend: how an update moves a real-time endpoint to a new version: empty (a
    plain UpdateEndpoint), `all-at-once`, `canary` or `linear` (blue/green, rolled back by alarms
    on 5xx errors and model latency; docs/sagemaker.md, "Canary deploys")."""
    sagemaker_shift_percent: int = 10
    """SageMaker backend: the canary size, or linear step, in percent of the new fleet (1..50)."""
    sagemaker_shift_wait_s: int = 300
    """SageMaker backend: baking period after each traffic step (0..3600 s)."""
    sagemaker_shift_bake_s: int = 600
    """SageMaker backend: final baking period before the old fleet goes (0..3600 s)."""
    sagemaker_alarm_5xx: int = 1
    """SageMaker backend: Invocation5XXErrors in one minute that roll an update back."""
    sagemaker_alarm_latency_ms: int = 2000
    """SageMaker backend: p99 ModelLatency (ms, over one minute) that rolls an update back."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be -1 (off) or 0..65535, got {self.metrics_port}")
        if self.monitor_max_series < 0:
            raise ValueError("monitor_max_series must be 0 or more")
        if self.shutdown_drain_s < 0 or self.shutdown_grace_s < 0:
            raise ValueError("shutdown_drain_s and shutdown_grace_s cannot be negative")
        if not -1 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be -1 (off) or 0..65535, got {self.http_port}")
        if self.fleet_poll_s * 3 > self.lease_s:
            raise ValueError("lease_s must be at least 3 x fleet_poll_s (a lease is renewed "
                             "every poll)")
        if self.database_url and not self.database_url.startswith(
                ("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")):
            raise ValueError("database_url must be postgresql://... or sqlite:///PATH")
        if self.artifact_store:  # ValueError naming what is wrong (no import cycle at load)
            from forecast_gateway.backends.sagemaker.layout import S3Layout
            S3Layout.from_uri(self.artifact_store, "artifact_store")
        if self.export_store:
            from forecast_gateway.backends.sagemaker.layout import S3Layout
            S3Layout.from_uri(self.export_store, "export_store")
        if self.log_format not in ("json", "text"):
            raise ValueError(f"log_format must be json or text, got {self.log_format!r}")
        for name in ("max_message_bytes", "max_upload_bytes", "max_upload_chunk_bytes",
                     "max_predict_rows", "max_stream_chunk_rows", "predict_threads", "stream_window",
                     "unary_predict_threads", "wide_predict_threads", "wide_predict_series",
                     "control_threads", "upload_threads", "training_slots", "model_cache_size",
                     "docker_ping_timeout_s", "docker_request_timeout_s", "docker_drain_s",
                     "docker_serve_workers", "docker_max_body_bytes", "lease_s", "fleet_poll_s",
                     "http_keepalive_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.backend == "sagemaker":
            _check_sagemaker(self)
        if self.max_upload_chunk_bytes > self.max_message_bytes:
            raise ValueError("max_upload_chunk_bytes cannot exceed max_message_bytes")
        if self.allow_file_uris and self.file_uri_root is None:
            raise ValueError("allow_file_uris needs file_uri_root (each retailer reads only "
                             "<file_uri_root>/<retailer>/)")
        _check_security(self)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_security(config: GatewayConfig) -> None:
    """Auth and TLS settings, checked once at start-up."""
    if not config.auth and not _is_loopback(config.host):
        raise ValueError(f"--no-auth is accepted only with a loopback --host (127.0.0.1, ::1 or "
                         f"localhost), not {config.host!r}")
    if config.auth_cache_s < 0:
        raise ValueError("auth_cache_s cannot be negative")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ValueError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
    if config.tls_cert is not None and config.http_port >= 0:
        raise ValueError("--http-port cannot be combined with --tls-cert: the HTTP/JSON face "
                         "speaks plain HTTP (put it behind a TLS proxy; docs/http_api.md)")
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: no such file: {path}")


def _check_sagemaker(config: GatewayConfig) -> None:
    """The SageMaker backend's settings, checked once at start-up."""
    for name in ("aws_max_attempts", "sagemaker_instance_count", "sagemaker_volume_size_gb",
                 "sagemaker_max_runtime_s", "sagemaker_serverless_concurrency",
                 "sagemaker_endpoint_instance_count", "sagemaker_parallel_jobs",
                 "sagemaker_poll_max_s", "sagemaker_endpoint_timeout_s",
                 "sagemaker_invoke_concurrency"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be positive")
    if not config.sagemaker_bucket:
        raise ValueError("the sagemaker backend needs --sagemaker-bucket")
    if not config.sagemaker_role_arn and not config.sagemaker_local_mode:
        raise ValueError("the sagemaker backend needs --sagemaker-role-arn (the execution role)")
    if config.sagemaker_train_with not in ("training-job", "pipeline"):
        raise ValueError(f"sagemaker_train_with must be training-job or pipeline, got "
                         f"{config.sagemaker_train_with!r}")
    if config.sagemaker_traffic_shift:  # ValueError naming the setting (no import cycle at load)
        from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
        SageMakerSettings.from_config(config)
    memory = config.sagemaker_serverless_memory_mb
    if memory not in range(1024, 6145, 1024):
        raise ValueError(f"sagemaker_serverless_memory_mb must be 1024, 2048, ... 6144, got {memory}")


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
        epilog="API keys: `forecast-gateway keys --help` (create-retailer, issue, list, revoke; "
        "offline, on the same --data-dir or --database-url).",
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
    "data_dir": "per-retailer storage root (and the embedded SQLite database)",
    "database_url": "postgresql://... for a fleet; empty: SQLite in the data dir",
    "artifact_store": "s3://bucket/prefix for model versions and datasets; empty: the data dir",
    "gateway_id": "this gateway's id in the database (default: host-pid-random)",
    "lease_s": "seconds a job lease lasts without renewal",
    "fleet_poll_s": "seconds between polls for queued jobs, cancels and live switches",
    "backend": "local | docker | sagemaker",
    "port_file": "write the bound port to this file once serving",
    "http_port": "HTTP/JSON port, 0 for any free port, -1 for none",
    "http_port_file": "write the bound HTTP port to this file once serving",
    "http_keepalive_s": "HTTP: close a connection with no complete request within this",
    "metrics_port": "Prometheus /metrics port, 0 for any free port, -1 for none",
    "metrics_port_file": "write the bound metrics port to this file once serving",
    "monitor_max_series": "series per retailer recorded for live accuracy",
    "log_level": "DEBUG | INFO | WARNING | ERROR", "log_format": "json | text",
    "max_message_bytes": "largest gRPC message", "max_upload_bytes": "largest uploaded dataset",
    "max_upload_chunk_bytes": "largest upload chunk", "max_predict_rows": "most rows per Predict",
    "max_stream_chunk_rows": "most rows per PredictStream chunk",
    "predict_threads": "PredictStream chunk threads",
    "unary_predict_threads": "unary Predict threads (apart from stream chunks)",
    "wide_predict_threads": "threads one large forecast splits its series across",
    "wide_predict_series": "series from which a forecast splits across wide threads",
    "stream_window": "chunks of one PredictStream forecast at once", "control_threads": "registry/file threads",
    "training_slots": "concurrent training jobs", "training_nice": "niceness of training processes",
    "cancel_grace_s": "SIGTERM->SIGKILL delay for cancelled training",
    "shutdown_grace_s": "drain time on SIGTERM",
    "shutdown_drain_s": "seconds NOT_SERVING before the stop (clients move away)", "model_cache_size": "models kept loaded",
    "allow_file_uris": "let Train read file:// URIs (under --file-uri-root)",
    "file_uri_root": "file:// URIs of retailer R must lie under FILE_URI_ROOT/R/",
    "export_store": "s3://bucket/prefix: retailer R may export to s3://bucket/prefix/R/ only",
    "upload_threads": "upload/validation threads (apart from control threads)",
    "auth": "require a credential (--no-auth: loopback only)",
    "auth_cache_s": "seconds a verified API key stays cached",
    "tls_cert": "PEM server certificate (turns TLS on)", "tls_key": "PEM server private key",
    "tls_client_ca": "PEM CA that client certificates must chain to (mTLS)",
    "reflection": "serve gRPC server reflection",
    "docker_training_image": "docker backend: training image",
    "docker_inference_image": "docker backend: inference image",
    "docker_cli": "docker backend: the docker command",
    "docker_ping_timeout_s": "docker backend: wait for a new container's /ping",
    "docker_request_timeout_s": "docker backend: timeout of one /invocations call",
    "docker_drain_s": "docker backend: delay before stopping a retired container",
    "docker_serve_workers": "docker backend: gunicorn workers per inference container",
    "docker_max_body_bytes": "docker backend: largest /invocations body (at most 6 MiB)",
    "aws_region": "AWS region", "aws_endpoint_url": "endpoint URL of every AWS client (moto)",
    "aws_max_attempts": "attempts per AWS call (adaptive retry)",
    "sagemaker_bucket": "sagemaker backend: S3 bucket", "sagemaker_prefix": "sagemaker backend: S3 key prefix",
    "sagemaker_role_arn": "sagemaker backend: execution role ARN",
    "sagemaker_training_image": "sagemaker backend: training image URI",
    "sagemaker_inference_image": "sagemaker backend: inference image URI",
    "sagemaker_instance_type": "sagemaker backend: training instance type",
    "sagemaker_instance_count": "sagemaker backend: training instances per job",
    "sagemaker_volume_size_gb": "sagemaker backend: training volume (GB)",
    "sagemaker_max_runtime_s": "sagemaker backend: training MaxRuntimeInSeconds",
    "sagemaker_serverless_memory_mb": "sagemaker backend: serverless endpoint memory (MB)",
    "sagemaker_serverless_concurrency": "sagemaker backend: serverless MaxConcurrency",
    "sagemaker_endpoint_instance_type": "sagemaker backend: real-time endpoint instance type (empty: serverless)",
    "sagemaker_endpoint_instance_count": "sagemaker backend: real-time endpoint instances",
    "sagemaker_train_with": "sagemaker backend: training-job | pipeline",
    "sagemaker_local_mode": "sagemaker backend: SageMaker SDK local mode (docker)",
    "sagemaker_parallel_jobs": "sagemaker backend: training jobs followed at once",
    "sagemaker_poll_max_s": "sagemaker backend: longest pause between Describe calls",
    "sagemaker_endpoint_timeout_s": "sagemaker backend: wait for an endpoint to be InService",
    "sagemaker_invoke_concurrency": "sagemaker backend: InvokeEndpoint calls in flight per request",
    "sagemaker_traffic_shift": "sagemaker backend: '' | all-at-once | canary | linear (with rollback alarms)",
    "sagemaker_shift_percent": "sagemaker backend: canary size / linear step, percent of the fleet",
    "sagemaker_shift_wait_s": "sagemaker backend: baking seconds after each traffic step",
    "sagemaker_shift_bake_s": "sagemaker backend: final baking seconds before the old fleet goes",
    "sagemaker_alarm_5xx": "sagemaker backend: 5xx errors per minute that roll an update back",
    "sagemaker_alarm_latency_ms": "sagemaker backend: p99 model latency (ms) that rolls an update back",
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
            elif f.type in ("Path", "Path | None"):  # annotations are strings here
                value = Path(str(raw))
            else:
                value = str(raw)
        except ValueError as exc:
            kind = ("true or false" if isinstance(default, bool) else "an integer"
                    if isinstance(default, int) else "a number" if isinstance(default, float)
                    else None)
            _refuse(f"{source}: expected {kind}, got {str(raw)[:100]!r}" if kind
                    else f"{source}: {exc}")
        values[f.name] = value
    try:
        return GatewayConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        _refuse(str(exc))
        raise  # unreachable


def _refuse(message: str) -> None:
    """A bad setting: one line on stderr and exit code 2 (not the whole usage, which buries the
    reason under 60 lines of flags)."""
    sys.stderr.write(f"forecast-gateway: error: {message} (--help lists every flag)\n")
    raise SystemExit(2)
