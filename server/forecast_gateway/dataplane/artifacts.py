"""The on-disk half of model versions, crash-consistent.

Publishing a version is three steps, each safe to be cut off by `kill -9`:

1. **stage**: the artifact is moved (or copied) into `models/.staging/<token>/` and its manifest
   (every file's sha256) is computed there;
2. **install**: one `rename` puts it at `models/<version>` (atomic on one filesystem; it fails
   rather than nest when the name is taken);
3. **commit**: the registry records the version with its manifest (the caller's transaction).

A crash before 3 leaves a directory the registry does not know. `reconcile`, at start-up, deletes
`.staging/` and moves every unknown version directory to `<data-dir>/quarantine/<retailer>/`,
so the next job installs its own artifact under that version name. `verify` compares a version's
directory with its recorded manifest before the gateway loads it: a mismatch is an
`ArtifactError` (FAILED_PRECONDITION), never a wrong model served.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path

from forecast_gateway import manifest
from forecast_gateway.crashpoints import crash_point
from forecast_gateway.domain import ModelRef, ModelVersion
from forecast_gateway.errors import InvalidArgument
from forecast_gateway.registry import Registry
from forecast_gateway.storage import Storage, check_retailer

log = logging.getLogger("forecast_gateway.dataplane.artifacts")


class ArtifactStore:
    """Stages, installs, quarantines and verifies model version directories."""

    def __init__(self, storage: Storage, registry: Registry):
        self._storage = storage
        self._registry = registry
        self._verified: set[Path] = set()
        self._lock = threading.Lock()

    # -- publishing --------------------------------------------------------------------------

    def stage(self, retailer: str, source: Path, move: bool) -> tuple[Path, dict[str, str]]:
        """Move (`move=True`: a job's own output) or copy `source` into the retailer's staging
        dir; returns the staged path and its manifest."""
        staging = self._storage.staging_dir(retailer)
        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / secrets.token_hex(8)
        if move:
            try:
                os.rename(source, staged)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.copytree(source, staged)  # another filesystem: copy, then drop the source
                shutil.rmtree(source, ignore_errors=True)
        else:
            shutil.copytree(source, staged, symlinks=True)
        crash_point("publish.staged")
        return staged, manifest.compute(staged)

    def install(self, staged: Path, retailer: str, version: str) -> Path:
        """Rename the staged artifact to `models/<version>`; FileExistsError if the name is taken
        (never nests one artifact inside another)."""
        dest = self._storage.model_dir(retailer, version)
        if dest.exists() and self._registry.get_model(retailer, version) is None:
            # Called under the retailer's publish lock: nobody else is publishing it, so this is
            # what a publish cut off before its record left behind.
            self._quarantine(dest, retailer, "the registry has no such version (a publish cut "
                             "off before it was recorded)")
        if dest.exists():
            raise FileExistsError(f"{dest} already exists and is registered")
        os.rename(staged, dest)
        _fsync_dir(dest.parent)
        with self._lock:
            self._verified.add(dest)  # its manifest was just computed from these very files
        crash_point("publish.installed")
        return dest

    def discard(self, path: Path, retailer: str, why: str) -> None:
        """Move an installed but unrecorded version directory out of `models/` (a publish that
        failed after `install`), so the version name is free again."""
        with self._lock:
            self._verified.discard(path)
        if path.exists():
            self._quarantine(path, retailer, why)

    # -- loading -----------------------------------------------------------------------------

    def verify(self, ref: ModelRef, model: ModelVersion | None = None) -> None:
        """Check the version's files against its recorded manifest, once per process (then the
        loaded model is what was checked). ArtifactError on a mismatch."""
        with self._lock:
            if ref.path in self._verified:
                return
        model = model or self._registry.get_model(ref.retailer, ref.version)
        if model is not None and model.manifest:
            manifest.verify(ref.path, model.manifest,
                            f"model version {ref.version!r} of retailer {ref.retailer!r}")
        with self._lock:
            self._verified.add(ref.path)

    # -- start-up ----------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Make the disk agree with the registry: drop staging dirs, quarantine version dirs the
        registry does not know, and record the manifest of versions published before manifests
        existed (their files as they are now). Each retailer's directory is checked under its
        publish lock (`Database.lock`), so on a data dir a fleet shares no other gateway is
        half-way through a publish for it meanwhile."""
        known = {(m.retailer, m.version): m for m in self._registry.all_models()}
        base = self._storage.root / "retailers"
        for models_dir in sorted(base.glob("*/models")) if base.exists() else []:
            retailer = models_dir.parent.name
            try:
                check_retailer(retailer)
            except InvalidArgument:
                log.warning("not a retailer directory; left alone",
                            extra={"fields": {"path": str(models_dir.parent)}})
                continue
            with self._registry.db.lock(f"publish:{retailer}"):
                known = {(m.retailer, m.version): m for m in self._registry.all_models()}
                for entry in sorted(models_dir.iterdir()):
                    if entry.name == ".staging":
                        shutil.rmtree(entry, ignore_errors=True)
                    elif (retailer, entry.name) not in known:
                        self._quarantine(entry, retailer, "the registry has no such version "
                                         "(a publish cut off before it was recorded)")
        for model in known.values():
            if model.manifest:
                continue
            if model.path.is_dir():
                self._registry.set_manifest(model.retailer, model.version,
                                            manifest.compute(model.path))
                log.info("manifest recorded for a version published before manifests",
                         extra={"fields": {"retailer": model.retailer, "model_version": model.version}})
            else:
                log.error("a registered model version has no directory; it cannot be served",
                          extra={"fields": {"retailer": model.retailer, "model_version": model.version,
                                            "path": str(model.path)}})

    def _quarantine(self, path: Path, retailer: str, why: str) -> None:
        target_dir = self._storage.quarantine_dir(retailer)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        os.rename(path, target)
        log.warning("model directory quarantined", extra={"fields": {
            "retailer": retailer, "from": str(path), "to": str(target), "why": why}})


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in `directory` (its entry list) before the registry records it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
