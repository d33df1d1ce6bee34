"""The on-disk half of model versions, crash-consistent.

Publishing a version is three steps, each safe to be cut off by `kill -9`:

1. **stage**: the artifact is moved (or copied) into `models/.staging/<token>/` and its manifest
   (every file's sha256) is computed there;
2. **install**: one `rename` puts it at `models/<version>` (atomic on one filesystem; it fails
   rather than nest when the name is taken);
3. **commit**: the registry records the version with its manifest (the caller's transaction).

With an object store (`--artifact-store`, `object_store.py`), step 2 first uploads every file
to S3 under `models/<retailer>/<version>-<sha12>/`, and the rename puts the artifact at the
cache entry `<data-dir>/cache/<retailer>/models/<version>-<sha12>/` instead (the path the
registry then records); `verify` fetches that entry on a gateway that does not have it.

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
from typing import TYPE_CHECKING

from forecast_gateway.domain import ModelRef, ModelVersion
from forecast_gateway.errors import InvalidArgument
from forecast_gateway.store import manifest
from forecast_gateway.store.registry import Registry
from forecast_gateway.store.storage import Storage, check_retailer
from forecast_gateway.testing.crashpoints import crash_point
from forecasting.errors import ArtifactError

if TYPE_CHECKING:
    from forecast_gateway.dataplane.object_store import ObjectStore

log = logging.getLogger("forecast_gateway.dataplane.artifacts")


class ArtifactStore:
    """Stages, installs, quarantines and verifies model version directories."""

    def __init__(self, storage: Storage, registry: Registry, objects: ObjectStore | None = None):
        self._storage = storage
        self._registry = registry
        self._objects = objects
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

    def install(self, staged: Path, retailer: str, version: str, files: dict[str, str]) -> Path:
        """Rename the staged artifact (manifest `files`) to `models/<version>`, or with an object
        store upload it and rename it to its cache entry; FileExistsError if the name is taken
        (never nests one artifact inside another)."""
        if self._objects is not None:
            return self._install_uploaded(staged, retailer, version, files)
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

    def _install_uploaded(self, staged: Path, retailer: str, version: str,
                          files: dict[str, str]) -> Path:
        assert self._objects is not None
        name = self._objects.version_name(version, files)
        self._objects.upload_model(staged, retailer, name, files)
        crash_point("publish.uploaded")
        dest = self._storage.cached_model_dir(retailer, name)
        if dest.exists():  # left by a publish of the same files cut off before its record
            self._objects.evict(retailer, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, dest)
        _fsync_dir(dest.parent)
        with self._lock:
            self._verified.add(dest)
        crash_point("publish.installed")
        return dest

    def discard(self, path: Path, retailer: str, why: str) -> None:
        """Move an installed but unrecorded version directory out of `models/` (a publish that
        failed after `install`), so the version name is free again."""
        with self._lock:
            self._verified.discard(path)
        if self._objects is not None and path == self._storage.cached_model_dir(
                retailer, path.name):   # a cache entry: its objects stay unreferenced
            self._objects.evict(retailer, path)
        elif path.exists():
            self._quarantine(path, retailer, why)

    # -- loading -----------------------------------------------------------------------------

    def verify(self, ref: ModelRef, model: ModelVersion | None = None) -> None:
        """Check the version's files against its recorded manifest, once per process (then the
        loaded model is what was checked); a version in the object store is fetched into the
        cache first, when missing there. ArtifactError on a mismatch."""
        with self._lock:
            if ref.path in self._verified:
                return
        model = model or self._registry.get_model(ref.retailer, ref.version)
        what = f"model version {ref.version!r} of retailer {ref.retailer!r}"
        files = model.manifest if model is not None else {}
        cached = ref.path == self._storage.cached_model_dir(ref.retailer, ref.path.name)
        if cached and self._objects is not None:
            self._objects.fetch_model(ref, files, what)
        elif cached and not ref.path.is_dir():
            raise ArtifactError(f"{what} was published to an artifact store and is not in this "
                                "gateway's cache: start the gateway with the fleet's "
                                "--artifact-store")
        elif files:
            manifest.verify(ref.path, files, what)
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
        if self._objects is not None:
            self._drop_unreferenced(self._objects)
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

    def _drop_unreferenced(self, objects: ObjectStore) -> None:
        """Delete cache entries no registered version names: what a publish cut off after its
        upload left behind (its objects stay in S3, unreferenced; the next publish of the same
        version name has other files, so another key, or the same files under the same key)."""
        for cached in sorted(self._storage.root.glob("cache/*/models")):
            retailer = cached.parent.name
            try:
                check_retailer(retailer)
            except InvalidArgument:
                continue
            with self._registry.db.lock(f"publish:{retailer}"):
                paths = {m.path for m in self._registry.list_models(retailer)}
                for entry in sorted(cached.iterdir()):
                    if entry not in paths:
                        objects.evict(retailer, entry)
                        log.warning("cache entry no version names deleted (a publish cut off "
                                    "before it was recorded)", extra={"fields": {
                                        "retailer": retailer, "path": str(entry)}})

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
