"""Model versions and datasets in S3 (`--artifact-store s3://bucket/prefix`), read by every
replica through a local cache checked against the registry.

The keys are the SageMaker backend's layout (`backends.sagemaker.layout.S3Layout`, contract 6):
a gateway on `--backend sagemaker` with the same bucket and prefix finds the uploads where its
training jobs read them.

```
raw/<retailer>/<dataset_id>.<csv|parquet>     a validated upload, as received
models/<retailer>/<version>-<sha12>/<file>    a published version's files; <sha12> is the first
                                              12 hex digits of its manifest's digest
```

Each gateway caches what it reads under its own data dir, named the same way
(`Storage.cached_model_dir`, `cached_dataset_path`): `cache/<retailer>/models/<version>-<sha12>/`
and `cache/<retailer>/raw/<dataset_id>.<fmt>`. The registry records those paths relative to the
data dir, so a replica on another (even empty) data dir finds the same entry under its own root.

- **Publishing** (`upload_model`): every file of the staged artifact is uploaded before the
  staged directory becomes the cache entry and before the registry records the version. A
  publish cut off on the way leaves objects nobody references, never a version without them.
- **Fetching** (`fetch_model`, `fetch_dataset`): a cache entry is used once it matches the
  registry (every file's sha256 against the version's manifest; a dataset's sha256 against the
  one recorded at upload), without a download. An entry that does not match is dropped and
  fetched again. A download lands in `cache/<retailer>/.incoming/`, is checked the same way and
  only then renamed into place, so an entry is always complete. A download that does not match
  (an object tampered with or cut short) is refused: `ArtifactError` (FAILED_PRECONDITION)
  naming the version, logged, never kept and never served.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway.backends.base import CONTENT_TYPES
from forecast_gateway.backends.sagemaker.aws import create_s3_client
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import Dataset, ModelRef
from forecast_gateway.errors import BackendUnavailable, FailedPrecondition
from forecast_gateway.store import manifest
from forecast_gateway.store.storage import Storage
from forecasting.errors import ArtifactError

log = logging.getLogger("forecast_gateway.dataplane.object_store")

#: Error codes S3 (and moto) answer for an object or bucket that is not there.
_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")
_DENIED = ("403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
           "SignatureDoesNotMatch")


class ObjectStore:
    """The S3 side of model versions and datasets, and this gateway's cache of it. Thread-safe."""

    def __init__(self, layout: S3Layout, s3: Any, storage: Storage,
                 name: str = "the artifact store"):
        self.layout = layout
        self.name = name   # in error messages (exports use one for the export store)
        self._s3 = s3
        self._storage = storage
        self._lock = threading.Lock()
        self._entry_locks: dict[Path, threading.Lock] = {}
        self._checked: set[Path] = set()   # dataset files checked by this process

    @classmethod
    def from_config(cls, config: GatewayConfig, storage: Storage) -> ObjectStore:
        """The store of `config.artifact_store`, on an s3 client made as the SageMaker backend
        makes its own (`--aws-region`, `--aws-endpoint-url` or AWS_ENDPOINT_URL, retries)."""
        layout = S3Layout.from_uri(config.artifact_store, "artifact_store")
        s3 = create_s3_client(region=config.aws_region, endpoint_url=config.aws_endpoint_url,
                              max_attempts=config.aws_max_attempts)
        return cls(layout, s3, storage)

    @property
    def uri(self) -> str:
        """`s3://bucket/prefix`."""
        return self.layout.root_uri

    def check(self) -> None:
        """At start-up: the bucket answers. ValueError saying why not (the gateway exits 1)."""
        bucket = self.layout.bucket
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING:
                raise ValueError(f"--artifact-store {self.uri}: bucket {bucket!r} does not exist "
                                 "(create it first; the gateway never creates buckets)") from None
            raise ValueError(f"--artifact-store {self.uri}: S3 refused HeadBucket on {bucket!r} "
                             f"({code}): {exc}") from None
        except BotoCoreError as exc:
            raise ValueError(f"--artifact-store {self.uri}: S3 does not answer: {exc}") from None

    # -- model versions ----------------------------------------------------------------------

    @staticmethod
    def version_name(version: str, files: dict[str, str]) -> str:
        """`<version>-<sha12>`: the version's cache directory and key prefix."""
        return f"{version}-{manifest.digest(files)[:12]}"

    def holds_model(self, ref: ModelRef) -> bool:
        """Whether the version's path is a cache entry of this store (not a local directory)."""
        return ref.path == self._storage.cached_model_dir(ref.retailer, ref.path.name)

    def upload_model(self, staged: Path, retailer: str, name: str, files: dict[str, str]) -> None:
        """Upload every file of `files` from the staged artifact under `models/<retailer>/<name>/`."""
        for rel in sorted(files):
            key = self.layout.version_key(retailer, name, _relative(rel, name))
            self._call(f"uploading {rel!r} of {name}", lambda k=key, r=rel: self._s3.upload_file(
                str(staged / r), self.layout.bucket, k))
        log.info("model version uploaded to the artifact store", extra={"fields": {
            "retailer": retailer, "name": name, "files": len(files),
            "uri": self.layout.uri(self.layout.version_key(retailer, name))}})

    def fetch_model(self, ref: ModelRef, files: dict[str, str], what: str) -> None:
        """Make the version's cache entry (`ref.path`) present and matching `files` (its
        manifest in the registry): a matching entry is kept as it is; otherwise every file is
        downloaded and checked. ArtifactError when the objects do not match."""
        path, name = ref.path, ref.path.name
        if not files:
            raise ArtifactError(f"{what} has no recorded manifest, so it cannot be fetched from "
                                f"the artifact store {self.uri}; the gateway will not serve it")
        with self._entry(path):
            if path.is_dir():
                try:
                    manifest.verify(path, files, what)
                    return
                except ArtifactError as exc:
                    log.warning("a cached model version does not match its manifest; it is "
                                "fetched again", extra={"fields": {
                                    "retailer": ref.retailer, "model_version": ref.version,
                                    "path": str(path), "why": str(exc)}})
                    self.evict(ref.retailer, path)
            prefix = self.layout.uri(self.layout.version_key(ref.retailer, name))
            with self._incoming(ref.retailer) as tmp:
                for rel in sorted(files):
                    self._download(self.layout.version_key(ref.retailer, name, _relative(rel, name)),
                                   tmp / rel, f"{what}: its file {rel!r}")
                try:
                    manifest.verify(tmp, files, f"{what} (as downloaded from {prefix})")
                except ArtifactError as exc:
                    log.error("model version refused: its objects in the artifact store do not "
                              "match the manifest recorded when it was published", extra={"fields": {
                                  "retailer": ref.retailer, "model_version": ref.version,
                                  "uri": prefix, "why": str(exc)}})
                    raise
                self._place(tmp, path, lambda: manifest.verify(path, files, what))
        log.info("model version fetched from the artifact store", extra={"fields": {
            "retailer": ref.retailer, "model_version": ref.version, "uri": prefix,
            "path": str(path)}})

    # -- datasets ----------------------------------------------------------------------------

    def holds_dataset(self, dataset: Dataset) -> bool:
        """Whether the dataset's path is a cache entry of this store."""
        return dataset.path == self._storage.cached_dataset_path(
            dataset.retailer, dataset.dataset_id, dataset.format)

    def upload_dataset(self, path: Path, retailer: str, dataset_id: str, fmt: str) -> str:
        """Upload a validated dataset to `raw/<retailer>/<dataset_id>.<fmt>`; its URI."""
        key = self.layout.raw_key(retailer, dataset_id, fmt)
        self._call(f"uploading dataset {dataset_id!r}", lambda: self._s3.upload_file(
            str(path), self.layout.bucket, key, ExtraArgs={"ContentType": CONTENT_TYPES[fmt]}))
        with self._lock:
            self._checked.add(path)  # its sha256 was taken from these very bytes
        return self.layout.uri(key)

    def fetch_dataset(self, dataset: Dataset) -> Path:
        """The dataset's cached file, downloaded when missing or not matching the sha256 recorded
        at upload. FailedPrecondition when the object does not match either."""
        path = dataset.path
        what = f"dataset {dataset.dataset_id!r} of retailer {dataset.retailer!r}"
        with self._entry(path):
            with self._lock:
                if path in self._checked and path.is_file():
                    return path
            if path.is_file():
                if _sha256(path) == dataset.sha256:
                    with self._lock:
                        self._checked.add(path)
                    return path
                log.warning("a cached dataset does not match its sha256; it is fetched again",
                            extra={"fields": {"dataset_id": dataset.dataset_id, "path": str(path)}})
                self.evict(dataset.retailer, path)
            key = self.layout.raw_key(dataset.retailer, dataset.dataset_id, dataset.format)
            with self._incoming(dataset.retailer) as tmp:
                target = tmp / path.name
                self._download(key, target, what)
                refused = FailedPrecondition(
                    f"{what} in the artifact store ({self.layout.uri(key)}) does not match "
                    "the sha256 recorded when it was uploaded; it is not used. Upload the "
                    "data again.")
                if _sha256(target) != dataset.sha256:
                    log.error("dataset refused: its object in the artifact store does not match "
                              "the sha256 recorded at upload", extra={"fields": {
                                  "dataset_id": dataset.dataset_id, "uri": self.layout.uri(key)}})
                    raise refused
                self._place(target, path, lambda: _same(path, dataset.sha256, refused))
            with self._lock:
                self._checked.add(path)
        log.info("dataset fetched from the artifact store", extra={"fields": {
            "dataset_id": dataset.dataset_id, "uri": self.layout.uri(key), "path": str(path)}})
        return path

    # -- the cache ---------------------------------------------------------------------------

    def evict(self, retailer: str, path: Path) -> None:
        """Remove a cache entry (moved aside first, so nobody sees it half deleted)."""
        with self._lock:
            self._checked.discard(path)
        aside = self._storage.cache_incoming_dir(retailer) / f"evicted-{secrets.token_hex(6)}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        if aside.is_dir():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink()

    @contextmanager
    def _entry(self, path: Path) -> Iterator[None]:
        """One fetch of a cache entry at a time in this process."""
        with self._lock:
            lock = self._entry_locks.setdefault(path, threading.Lock())
        with lock:
            yield

    @contextmanager
    def _incoming(self, retailer: str) -> Iterator[Path]:
        tmp = self._storage.cache_incoming_dir(retailer) / secrets.token_hex(8)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _place(self, source: Path, path: Path, check_theirs) -> None:
        """Rename a checked download into the cache; when another gateway sharing this data dir
        placed the same entry first, keep theirs once it checks out."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            check_theirs()

    def _download(self, key: str, dest: Path, what: str) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._s3.download_file(self.layout.bucket, key, str(dest))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ArtifactError(f"{what} is missing from the artifact store "
                                    f"({self.layout.uri(key)}); the gateway will not serve it. "
                                    "Set another version live or train again.") from None
            raise _unavailable(f"reading {self.layout.uri(key)}", exc) from None
        except BotoCoreError as exc:
            raise _unavailable(f"reading {self.layout.uri(key)}", exc) from None

    def put_file(self, path: Path, key: str, content_type: str) -> str:
        """Upload a local file to `key` of the bucket (multipart when large); its URI."""
        self._call(f"uploading {key!r}", lambda: self._s3.upload_file(
            str(path), self.layout.bucket, key, ExtraArgs={"ContentType": content_type}))
        return self.layout.uri(key)

    def _call(self, doing: str, call) -> None:
        try:
            call()
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(f"{doing} to {self.uri}", exc, self.name) from None
        except S3UploadFailedError as exc:   # upload_file wraps S3's answer
            cause = next((e for e in (exc.__cause__, exc.__context__)
                          if isinstance(e, ClientError)), exc)
            raise _unavailable(f"{doing} to {self.uri}", cause, self.name) from None


def _relative(rel: str, name: str) -> str:
    """A manifest path, checked to stay inside its version (it becomes a key and a path)."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArtifactError(f"artifact {name}: file {rel!r} is not a relative path inside it")
    return rel


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(doing: str, exc: Exception, store: str = "the artifact store") -> Exception:
    """An S3 failure: FailedPrecondition when access is refused (retrying will not help),
    BackendUnavailable (retry) otherwise."""
    if isinstance(exc, ClientError) and _code(exc) in _DENIED:
        return FailedPrecondition(f"{store} refused {doing}: {exc}")
    return BackendUnavailable(f"{store} failed {doing}: {exc}")


def _same(path: Path, sha256: str, refused: Exception) -> None:
    if _sha256(path) != sha256:
        raise refused


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(manifest.BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
