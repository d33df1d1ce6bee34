"""Prometheus metrics of the gateway, served on `--metrics-port` with prometheus_client.

Two kinds:
- events counted where they happen (`GatewayMetrics`): RPCs by method and status code with their
  latency, rows predicted, training durations, model load times;
- state read from the registry and the monitoring store at scrape time (`StateCollector`): jobs
  by state, each retailer's live version, live accuracy, drift score and the age of its last
  actuals, and refused calls by reason. Reading at scrape time keeps one source of truth: no
  gauge can disagree with the registry.

Each gateway owns its own `CollectorRegistry` (tests run several gateways in one process).
Per-retailer labels make this an operator's endpoint: it listens on the gateway's host and is
off unless `--metrics-port` is set (docs/monitoring.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("forecast_gateway.metrics")

NAMESPACE = "forecast_gateway"
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TRAINING_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180)


class GatewayMetrics:
    """The counters and histograms one gateway updates as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter("rpcs", "RPCs finished, by full method name and status code.",
                            ["method", "code"], namespace=NAMESPACE, registry=self.registry)
        self.rpc_seconds = Histogram("rpc_duration_seconds", "RPC latency, by full method name.",
                                     ["method"], namespace=NAMESPACE, buckets=RPC_BUCKETS,
                                     registry=self.registry)
        self.rows_predicted = Counter("rows_predicted", "Forecast rows answered, by retailer.",
                                      ["retailer"], namespace=NAMESPACE, registry=self.registry)
        self.training_seconds = Histogram(
            "training_duration_seconds", "Training jobs from start to end, by terminal state.",
            ["state"], namespace=NAMESPACE, buckets=TRAINING_BUCKETS, registry=self.registry)
        self.model_load_seconds = Histogram(
            "model_load_seconds", "Time the backend took to load a model version.",
            namespace=NAMESPACE, buckets=LOAD_BUCKETS, registry=self.registry)
        self.served_dropped = Counter(
            "served_forecasts_dropped", "Served forecasts not recorded for live accuracy because "
            "the recorder's queue was full.", namespace=NAMESPACE, registry=self.registry)
        self.shadow_dropped = Counter(
            "shadow_batches_dropped", "Answered batches the version in shadow did not forecast "
            "because its queue was full.", namespace=NAMESPACE, registry=self.registry)
        self.shadow_rows = Counter("shadow_rows_predicted", "Rows the version in shadow "
                                   "forecast, by retailer.", ["retailer"], namespace=NAMESPACE,
                                   registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One finished RPC."""
        self.rpcs.labels(method, code).inc()
        self.rpc_seconds.labels(method).observe(seconds)

    def time_model_load(self, load: Callable[[], None]) -> None:
        """Run `load()` and record how long it took."""
        with self.model_load_seconds.time():
            load()

    def add_collector(self, collector: Collector) -> None:
        """Register a scrape-time collector (e.g. `StateCollector`)."""
        self.registry.register(collector)

    def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` over HTTP on host:port (0: any free port); returns the bound port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_address[1])
        log.info("metrics serving", extra={"fields": {"address": f"{host}:{bound}"}})
        return bound

    def stop(self) -> None:
        """Stop the HTTP server, if one runs."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class StateCollector(Collector):
    """Gauges read at scrape time from sources of truth; each source is a callable so this
    module needs no knowledge of the registry or the monitoring store."""

    def __init__(self, jobs_by_state: Callable[[], dict[str, int]],
                 retailers: Callable[[], Iterable[dict]],
                 auth_failures: Callable[[], dict[tuple[str, str], int]] | None = None):
        self._jobs_by_state = jobs_by_state
        self._retailers = retailers
        self._auth_failures = auth_failures

    def collect(self) -> Iterable[Metric]:
        """One sample per job state, per retailer and per refusal reason."""
        jobs = GaugeMetricFamily(f"{NAMESPACE}_jobs", "Training jobs by state.", labels=["state"])
        for state, count in sorted(self._jobs_by_state().items()):
            jobs.add_metric([state], count)
        yield jobs
        live = GaugeMetricFamily(f"{NAMESPACE}_live_model_info",
                                 "1 for each retailer's live model version.",
                                 labels=["retailer", "version"])
        rmsle = GaugeMetricFamily(f"{NAMESPACE}_live_rmsle",
                                  "Live RMSLE of the live model's served forecasts, labelled by "
                                  "the version that trained it (actuals updates included).",
                                  labels=["retailer", "version"])
        drift = GaugeMetricFamily(f"{NAMESPACE}_drift_score",
                                  "Largest PSI over families and features at the last check.",
                                  labels=["retailer"])
        age = GaugeMetricFamily(f"{NAMESPACE}_actuals_age_seconds",
                                "Seconds since the retailer's last actuals upload.",
                                labels=["retailer"])
        for r in self._retailers():
            if r.get("live_version"):
                live.add_metric([r["retailer"], r["live_version"]], 1)
            if r.get("live_rmsle") is not None:
                rmsle.add_metric([r["retailer"], r["trained_version"]], r["live_rmsle"])
            if r.get("drift_score") is not None:
                drift.add_metric([r["retailer"]], r["drift_score"])
            if r.get("actuals_age_s") is not None:
                age.add_metric([r["retailer"]], r["actuals_age_s"])
        yield from (live, rmsle, drift, age)
        if self._auth_failures is not None:
            refused = CounterMetricFamily(f"{NAMESPACE}_auth_failures",
                                        "Calls refused by authentication or authorisation since "
                                        "start, by status code and reason.",
                                        labels=["code", "reason"])
            for (code, reason), count in sorted(self._auth_failures().items()):
                refused.add_metric([code, reason], count)
            yield refused
