"""Export jobs' records: one JSON file per job under the retailer's directory.

```
<data-dir>/retailers/<retailer>/exports/<export_id>.json   the job (state, progress, result)
<data-dir>/retailers/<retailer>/exports/.incoming/         files of s3:// exports being written
```

An export runs on the gateway that accepted it (it is a prediction workload, not a training
job a fleet's training slots claim), so its record lives beside that gateway's data, keyed by
retailer: another retailer's id is simply not there. States are the training jobs' `JobState`.
A restart finds the records of exports it cut off and marks them FAILED, like training jobs.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from forecast_gateway.domain import JobState
from forecast_gateway.store.storage import Storage

_ID = re.compile(r"^exp-[0-9a-f]{12}$")


@dataclass(frozen=True)
class ExportJob:
    """One export, as recorded."""

    export_id: str
    retailer: str
    model_version: str
    destination: str
    format: str                                   # "parquet" | "csv"
    days: int
    levels: list[float]
    state: JobState
    created_at: float
    stores: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    failure_reason: str = ""
    progress: float = 0.0
    series_total: int = 0
    series_done: int = 0
    rows: int = 0
    result_uri: str = ""
    size_bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    partial: str = ""            # the file being written (removed when the job ends)
    owner: str = ""              # the gateway id running it
    seq: int = 0                 # bumped on every change; watchers compare it


class ExportRecords:
    """The records of every export this gateway knows, in memory and on disk. Thread-safe."""

    def __init__(self, storage: Storage):
        self._storage = storage
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], ExportJob] = {}

    def directory(self, retailer: str) -> Path:
        """`<data-dir>/retailers/<retailer>/exports`."""
        return self._storage.retailer_dir(retailer) / "exports"

    def incoming(self, retailer: str) -> Path:
        """Where the files of s3:// exports are written before the upload."""
        return self.directory(retailer) / ".incoming"

    def add(self, job: ExportJob) -> ExportJob:
        """Record a new job."""
        with self._lock:
            self._jobs[(job.retailer, job.export_id)] = job
            self._write(job)
        return job

    def update(self, job: ExportJob, **changes: object) -> ExportJob:
        """The job with `changes`, recorded (its `seq` bumped)."""
        with self._lock:
            current = self._jobs.get((job.retailer, job.export_id), job)
            updated = replace(current, seq=current.seq + 1, **changes)  # type: ignore[arg-type]
            self._jobs[(job.retailer, job.export_id)] = updated
            self._write(updated)
        return updated

    def get(self, retailer: str, export_id: str) -> ExportJob | None:
        """The retailer's job, or None (also for a malformed id or another retailer's job)."""
        if not _ID.match(export_id):
            return None
        with self._lock:
            found = self._jobs.get((retailer, export_id))
        if found is not None:
            return found
        path = self.directory(retailer) / f"{export_id}.json"
        try:
            return _load(path.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def unfinished_on_disk(self) -> list[ExportJob]:
        """At start-up: records of exports that never reached a terminal state."""
        found = []
        for path in self._storage.root.glob("retailers/*/exports/exp-*.json"):
            try:
                job = _load(path.read_text())
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if not job.state.terminal:
                found.append(job)
        return found

    def _write(self, job: ExportJob) -> None:
        directory = self.directory(job.retailer)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{job.export_id}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        payload = {**asdict(job), "state": job.state.value}
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)


def _load(text: str) -> ExportJob:
    data = json.loads(text)
    data["state"] = JobState(data["state"])
    return ExportJob(**data)
