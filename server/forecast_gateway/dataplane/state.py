"""What the data plane's services share: the registry, storage, backend, the live pointers, the
hub that wakes job watchers, the metrics they update and the object store (when there is one).
One `SharedState` is built by `ForecastService` and handed to each service."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from forecast_gateway.backends.base import Backend
from forecast_gateway.config import GatewayConfig
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import Dataset, JobState, ModelRef
from forecast_gateway.errors import BackendUnavailable, NotFound
from forecast_gateway.metrics import GatewayMetrics
from forecast_gateway.store.registry import Registry
from forecast_gateway.store.storage import Storage

if TYPE_CHECKING:
    from forecast_gateway.dataplane.object_store import ObjectStore


class _JobLike(Protocol):
    """What `JobHub.follow` reads of a job: its change counter and its state."""

    @property
    def seq(self) -> int: ...

    @property
    def state(self) -> JobState: ...


Watched = TypeVar("Watched", bound=_JobLike)


class JobHub:
    """Wakes async watchers when a job changes; `notify` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def subscribe(self, job_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        """Register the running loop for `job_id`'s changes."""
        sub = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, job_id: str, sub: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        """Forget a subscription from `subscribe`."""
        with self._lock:
            subs = self._subs.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[job_id]

    def notify(self, job_id: str | None = None) -> None:
        """Wake the watchers of `job_id` (of every job when None)."""
        with self._lock:
            subs = [s for k, v in self._subs.items() if job_id is None or k == job_id for s in v]
        for loop, event in subs:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop closed
                pass

    async def follow(self, job_id: str, read: Callable[[], Watched], closing: threading.Event,
                     poll_s: float, what: str) -> AsyncIterator[Watched]:
        """Yield `read()` now and after every change, until it is terminal: a `notify` here
        wakes the follower at once, a change made by another replica is read every `poll_s`.
        BackendUnavailable when the gateway starts stopping (`what`, e.g. "job", says what to
        watch again)."""
        sub = self.subscribe(job_id)
        try:
            job, last_seq = read(), -1
            while True:
                if job.seq != last_seq:
                    last_seq = job.seq
                    yield job
                if job.state.terminal:
                    return
                if closing.is_set():
                    raise BackendUnavailable(f"the gateway is stopping; watch the {what} again "
                                             "later")
                try:
                    await asyncio.wait_for(sub[1].wait(), timeout=poll_s)
                except TimeoutError:
                    pass
                sub[1].clear()
                job = read()
        finally:
            self.unsubscribe(job_id, sub)


class LivePointers:
    """retailer -> live `ModelRef`: the in-memory mirror of the registry's live versions, read
    on every prediction without touching SQLite."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, ModelRef] = {}

    def reload(self, registry: Registry) -> None:
        """Rebuild from the registry (at start-up)."""
        live: dict[str, ModelRef] = {}
        for retailer, version in registry.live_versions().items():
            model = registry.get_model(retailer, version)
            if model is not None:
                live[retailer] = model.ref
        with self._lock:
            self._live = live

    def get(self, retailer: str) -> ModelRef | None:
        """The live model of `retailer`, or None."""
        with self._lock:
            return self._live.get(retailer)

    def switch(self, ref: ModelRef, record: Callable[[], object]) -> ModelRef | None:
        """Make `ref` live as `record()` stores the switch in the registry (both under one lock,
        so readers never see one without the other); returns the version it replaced."""
        with self._lock:
            record()
            previous = self._live.get(ref.retailer)
            self._live[ref.retailer] = ref
        return previous


@dataclass
class SharedState:
    """The pieces every data-plane service works with."""

    config: GatewayConfig
    backend: Backend
    storage: Storage
    registry: Registry
    hub: JobHub = field(default_factory=JobHub)
    live: LivePointers = field(default_factory=LivePointers)
    closing: threading.Event = field(default_factory=threading.Event)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    objects: ObjectStore | None = None
    """The object store of `--artifact-store` (None: versions and datasets on the data dir)."""

    def dataset_file(self, dataset: Dataset) -> Path:
        """The dataset's file on this gateway's disk: from the object store's cache (fetched and
        checked when missing) when it lives there, else where it was stored."""
        if self.objects is not None and self.objects.holds_dataset(dataset):
            return self.objects.fetch_dataset(dataset)
        return dataset.path

    def existing(self, tenant: Tenant) -> Tenant:
        """`tenant` if the retailer exists; NotFound otherwise."""
        if not self.registry.retailer_exists(tenant.retailer):
            raise NotFound("retailer", tenant.retailer, "it is created by its first UploadDataset")
        return tenant

    def check_open(self) -> None:
        """BackendUnavailable once the gateway has started stopping."""
        if self.closing.is_set():
            raise BackendUnavailable("the gateway is stopping")
