"""The data plane: everything the API does, without gRPC, split by concern.

`ForecastService` builds the shared state (registry, storage, backend, live pointers, job hub)
and one service per concern on top of it:

- `datasets` (`DatasetService`): uploads and stored datasets;
- `jobs` (`JobService`): training jobs and the backend's events;
- `models` (`ModelService`): publishing, live versions, evaluations;
- `planning` (`PlanningService`): the next N days without a file, and days of supply;
- `predictions` (`PredictionService`): forecasts for rows;
- `monitoring` (`MonitoringService`): actuals, live accuracy and drift;
- `shadows` (`ShadowTrials`): challengers served in shadow, judged on live actuals;
- `exports` (`ExportService`): forecast files for replenishment systems, as jobs.

Every method takes a `Tenant` the edge has already validated. Blocking methods are plain
functions (the gRPC layer runs them in thread pools); `jobs.watch` is an async generator because
it waits on events. Servicers translate protos to these calls and nothing more.
"""

from __future__ import annotations

import threading

from forecast_gateway.backends.base import Backend
from forecast_gateway.config import GatewayConfig
from forecast_gateway.dataplane.datasets import DatasetService, UploadSession
from forecast_gateway.dataplane.exports import ExportService
from forecast_gateway.dataplane.fleet import Dispatcher, new_gateway_id
from forecast_gateway.dataplane.jobs import JobService
from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.monitoring import MonitoringService
from forecast_gateway.dataplane.planning import PlanningService
from forecast_gateway.dataplane.predictions import PredictionService
from forecast_gateway.dataplane.served import ServedRecorder
from forecast_gateway.dataplane.shadow import ShadowPredictor
from forecast_gateway.dataplane.shadow_trial import ShadowTrials
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.store import legacy
from forecast_gateway.store.database import Database, default_url
from forecast_gateway.store.monitoring_store import MonitoringStore, read_actuals
from forecast_gateway.store.registry import Registry
from forecast_gateway.store.storage import Storage

__all__ = ["ForecastService", "Tenant", "UploadSession"]

#: On a shared database, the uploads in progress a start-up may clear of the data dir: those
#: untouched for this long (another gateway's may be under way; an upload moves every second).
STALE_S = 3600.0


class ForecastService:
    """The gateway's data plane. Thread-safe."""

    def __init__(self, config: GatewayConfig, backend: Backend):
        storage = Storage(config.data_dir)
        storage.root.mkdir(parents=True, exist_ok=True)
        self.database = Database.open(config.database_url or default_url(storage.root))
        if not config.database_url:   # the embedded default: the release before's files
            legacy.import_monitoring(self.database, storage.root)
        registry = Registry(self.database, storage.root)
        # On PostgreSQL several gateways share the database (and may share the data dir).
        self.shared = self.database.dialect == "postgresql"
        self.gateway_id = config.gateway_id or new_gateway_id()
        objects = None
        if config.artifact_store:   # versions and datasets in S3 (object_store.py)
            from forecast_gateway.dataplane.object_store import ObjectStore

            objects = ObjectStore.from_config(config, storage)
        self.state = SharedState(config=config, backend=backend, storage=storage, registry=registry,
                                 objects=objects)
        self.datasets = DatasetService(self.state)
        self.models = ModelService(self.state)
        self._monitoring_store = MonitoringStore(self.database)
        recorder = ServedRecorder(self._monitoring_store, config.monitor_max_series,
                                  self.state.metrics.served_dropped.inc)
        self.monitoring = MonitoringService(self.state, self.models, self.datasets,
                                            self._monitoring_store, recorder)
        metrics = self.state.metrics
        shadow = ShadowPredictor(backend, recorder, self.state.live, config.monitor_max_series,
                                 metrics.shadow_dropped.inc,
                                 lambda r, n: metrics.shadow_rows.labels(r).inc(n))
        self.shadows = ShadowTrials(self.state, self.models, self._monitoring_store, shadow,
                                    lambda t: read_actuals(self.monitoring.actuals_path(t)))
        self.monitoring.shadows = self.shadows
        self.jobs = JobService(self.state, self.datasets, self.models,
                               self.monitoring.with_actuals, self.gateway_id)
        self.dispatcher = Dispatcher(self.state, self.jobs, self.models, self.gateway_id,
                                     config.lease_s, config.fleet_poll_s)
        self.jobs.on_queued = self.dispatcher.wake
        self.predictions = PredictionService(self.state, self.models, recorder, shadow)
        self.planning = PlanningService(self.state, self.models, self.predictions)
        self.exports = ExportService(self.state, self.models, self.predictions,
                                     owner=self.gateway_id)

    @property
    def config(self) -> GatewayConfig:
        """The gateway's configuration."""
        return self.state.config

    @property
    def storage(self) -> Storage:
        """The on-disk layout."""
        return self.state.storage

    @property
    def registry(self) -> Registry:
        """The registry of datasets, jobs and versions."""
        return self.state.registry

    def start(self) -> None:
        """Recover after a restart and join the fleet. Alone on its SQLite file, a gateway fails
        the jobs a restart cut off and makes the model directories agree with the registry
        (`artifacts.py`). On a shared database other gateways are working: only the jobs held
        under this gateway's own id are failed now (others' when their leases run out,
        `dataplane.fleet`), and only uploads in progress older than `STALE_S` are cleared
        (the model directories are checked under each retailer's publish lock). Then the live pointers load and the
        dispatcher starts. With an artifact store, its bucket must answer first."""
        if self.state.objects is not None:
            self.state.objects.check()   # a bucket that does not answer: the gateway exits 1
        stale_s = STALE_S if self.shared else 0.0
        self.state.storage.clean_incoming(older_than_s=stale_s)
        # A gateway restarted under the same --gateway-id fails its own cut-off jobs at once;
        # others' (and a random id's) wait for their leases to run out.
        self.jobs.fail_cut_off(self.gateway_id if self.shared else None)
        self.models.artifacts.reconcile()
        self.exports.fail_cut_off(self.gateway_id if self.shared else None)
        self.state.live.reload(self.state.registry)
        self.shadows.follow()
        threading.Thread(target=self.state.backend.warm_up, name="backend-warm-up",
                         daemon=True).start()
        self.dispatcher.start()

    def begin_shutdown(self) -> None:
        """Stop accepting work that outlives a call; end open watches (they get UNAVAILABLE)."""
        self.state.closing.set()
        self.dispatcher.stop()
        self.state.hub.notify()

    def close(self) -> None:
        """Stop the backend (running jobs are marked FAILED) and close the registry."""
        self.state.closing.set()
        self.dispatcher.stop()
        self.exports.close()      # before the backend: a running export stops at its chunk
        self.state.backend.close("the gateway was stopped while this job was running. Submit it again.")
        self.state.hub.notify()
        self.shadows.predictor.close()
        self.monitoring.recorder.close()
        self._monitoring_store.close()
        self.state.registry.close()
        self.database.close()
