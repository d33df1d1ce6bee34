"""The per-retailer storage layout under --data-dir (docs/contracts.md, contract 6).

```
<data-dir>/registry.sqlite3                      the registry (registry.py)
<data-dir>/retailers/<retailer>/raw/<dataset_id>.<csv|parquet>   uploaded datasets
<data-dir>/retailers/<retailer>/raw/.incoming/   uploads in progress (removed on restart)
<data-dir>/retailers/<retailer>/models/<version>/               model artifacts
<data-dir>/retailers/<retailer>/models/.staging/ artifacts being published (removed on restart)
<data-dir>/quarantine/<retailer>/<version>-<time>/ model directories the registry did not know
                                                 at start-up (a crash mid-publish); kept for
                                                 an operator to inspect or delete
<data-dir>/gateway.lock                          held by the one gateway serving this dir
<data-dir>/retailers/<retailer>/jobs/<job_id>/   a job: job.json (its record), train.log,
                                                 opt_ml/ (the SageMaker-shaped tree)
```
With `--artifact-store s3://bucket/prefix` (`dataplane/object_store.py`) model versions and
datasets live in S3 and this gateway keeps a cache of them instead of `raw/` and `models/`:
```
<data-dir>/cache/<retailer>/models/<version>-<sha12>/  a version's files (sha12: its manifest's)
<data-dir>/cache/<retailer>/raw/<dataset_id>.<fmt>     a dataset
<data-dir>/cache/<retailer>/.incoming/                 downloads in progress (removed on restart)
```
Retailer ids are checked before they become path components (see `check_retailer`).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from forecast_gateway.domain import Job
from forecast_gateway.errors import InvalidArgument

# Matched with `fullmatch`: `match` with `$` would accept a trailing newline ("acme\n").
RETAILER_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_retailer(retailer: str, field: str = "retailer") -> str:
    """Return the retailer id or raise InvalidArgument: it becomes a directory name."""
    if not retailer:
        raise InvalidArgument(field, "is required")
    if not RETAILER_RE.fullmatch(retailer):
        raise InvalidArgument(
            field, f"{retailer[:80]!r} is not a valid retailer id (1-63 characters: lowercase "
            "letters, digits, '-' and '_', starting with a letter or digit)")
    return retailer


class Storage:
    """Paths of everything the gateway keeps on disk."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def retailer_dir(self, retailer: str) -> Path:
        """`<root>/retailers/<retailer>`."""
        return self.root / "retailers" / check_retailer(retailer)

    def raw_dir(self, retailer: str) -> Path:
        """Where uploaded datasets are kept."""
        return self.retailer_dir(retailer) / "raw"

    def incoming_dir(self, retailer: str) -> Path:
        """Where uploads in progress are written."""
        return self.raw_dir(retailer) / ".incoming"

    def dataset_path(self, retailer: str, dataset_id: str, fmt: str) -> Path:
        """The stored file of a dataset."""
        return self.raw_dir(retailer) / f"{dataset_id}.{fmt}"

    def model_dir(self, retailer: str, version: str) -> Path:
        """A model version's artifact directory."""
        return self.models_dir(retailer) / version

    def models_dir(self, retailer: str) -> Path:
        """`<root>/retailers/<retailer>/models`: one directory per published version."""
        return self.retailer_dir(retailer) / "models"

    def staging_dir(self, retailer: str) -> Path:
        """Where an artifact is put together before it is renamed into `models/<version>`
        (same filesystem, so the rename is atomic)."""
        return self.models_dir(retailer) / ".staging"

    def cache_dir(self, retailer: str) -> Path:
        """`<root>/cache/<retailer>`: what this gateway fetched from the object store."""
        return self.root / "cache" / check_retailer(retailer)

    def cached_model_dir(self, retailer: str, name: str) -> Path:
        """A cached version, `name` = `<version>-<sha12>` (the object store's key too)."""
        return self.cache_dir(retailer) / "models" / name

    def cached_dataset_path(self, retailer: str, dataset_id: str, fmt: str) -> Path:
        """A cached dataset."""
        return self.cache_dir(retailer) / "raw" / f"{dataset_id}.{fmt}"

    def cache_incoming_dir(self, retailer: str) -> Path:
        """Where downloads are written before they are checked and renamed into the cache."""
        return self.cache_dir(retailer) / ".incoming"

    def quarantine_dir(self, retailer: str) -> Path:
        """Where start-up moves model directories the registry does not know."""
        return self.root / "quarantine" / check_retailer(retailer)

    def job_dir(self, retailer: str, job_id: str) -> Path:
        """A job's directory (its /opt/ml tree lives in `opt_ml/`)."""
        return self.retailer_dir(retailer) / "jobs" / job_id

    def write_job_record(self, job: Job) -> None:
        """Keep a copy of the job's record next to its files (the registry is the source of truth)."""
        directory = self.job_dir(job.retailer, job.job_id)
        directory.mkdir(parents=True, exist_ok=True)
        record = asdict(job)
        record["state"] = job.state.value
        tmp = directory / "job.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
        tmp.replace(directory / "job.json")

    def clean_incoming(self, older_than_s: float = 0.0) -> None:
        """Remove uploads and downloads cut off by a restart: every one, or (a data dir shared
        by a fleet) only those untouched for `older_than_s` seconds."""
        cutoff = time.time() - older_than_s
        for incoming in [*self.root.glob("retailers/*/raw/.incoming"),
                         *self.root.glob("cache/*/.incoming")]:
            if not older_than_s:
                shutil.rmtree(incoming, ignore_errors=True)
                continue
            for entry in incoming.iterdir():
                if _mtime(entry) < cutoff:
                    (shutil.rmtree if entry.is_dir() else Path.unlink)(entry)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
