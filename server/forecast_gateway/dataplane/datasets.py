"""Datasets: uploads (streamed to a temporary file, validated, then stored under `raw/`) and the
`file://` URIs a gateway may be allowed to read."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import Dataset
from forecast_gateway.errors import FailedPrecondition, InvalidArgument, NotFound, PayloadTooLarge

log = logging.getLogger("forecast_gateway.dataplane.datasets")

EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def new_id(prefix: str) -> str:
    """A random id such as `ds-1a2b3c4d5e6f`."""
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass
class UploadSession:
    """A file arriving in chunks: bytes go to a temporary file, `commit` hands it (and its
    sha256) to `finish`, which validates and stores it. Used by dataset and actuals uploads."""

    finish: Callable[[Path, str], Any]
    tmp_path: Path
    limit: int
    chunk_limit: int
    size: int = 0
    _file: BinaryIO | None = None
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, chunk: bytes) -> None:
        """Append a chunk; PayloadTooLarge over the chunk or total limit."""
        if len(chunk) > self.chunk_limit:
            raise PayloadTooLarge("an upload chunk", self.chunk_limit, "bytes", len(chunk))
        if self.size + len(chunk) > self.limit:
            raise PayloadTooLarge("the uploaded file", self.limit, "bytes", self.size + len(chunk))
        if self._file is None:
            self.tmp_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self) -> Any:
        """Hand the complete file to `finish` and return what it returns."""
        if self._file is not None:
            self._file.close()
        if self.size == 0:
            self.abort()
            raise InvalidArgument("chunk", "the upload carried no data")
        try:
            return self.finish(self.tmp_path, self._hash.hexdigest())
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)


class DatasetService:
    """Stores and finds a retailer's datasets."""

    def __init__(self, state: SharedState):
        self._s = state

    def begin_upload(self, tenant: Tenant, filename: str, fmt: str, declared_size: int) -> UploadSession:
        """Start a dataset upload. `fmt` is "csv", "parquet" or "" (inferred from `filename`)."""
        fmt = self.check_file(filename, fmt, declared_size)
        return self.begin_file(tenant, lambda path, sha256: self.store(
            tenant, filename, fmt, path, sha256, move=True))

    def check_file(self, filename: str, fmt: str, declared_size: int) -> str:
        """Check an upload's header; returns its format ("csv" or "parquet")."""
        if not filename:
            raise InvalidArgument("header.filename", "is required")
        if "/" in filename or "\\" in filename or len(filename) > 255:
            raise InvalidArgument("header.filename", "must be a bare file name of at most 255 characters")
        if not fmt:
            fmt = EXTENSIONS.get(Path(filename).suffix.lower(), "")
            if not fmt:
                raise InvalidArgument("header.format", f"cannot infer the format of {filename!r}: "
                                      "name a .csv or .parquet file or set the format")
        if declared_size > self._s.config.max_upload_bytes:
            raise PayloadTooLarge("the uploaded file", self._s.config.max_upload_bytes, "bytes",
                                  declared_size)
        return fmt

    def begin_file(self, tenant: Tenant, finish: Callable[[Path, str], Any]) -> UploadSession:
        """An upload session into the retailer's incoming directory, under the upload limits."""
        self._s.check_open()
        config = self._s.config
        tmp = self._s.storage.incoming_dir(tenant.retailer) / f"{secrets.token_hex(8)}.part"
        return UploadSession(finish, tmp, config.max_upload_bytes, config.max_upload_chunk_bytes)

    def store(self, tenant: Tenant, filename: str, fmt: str, source: Path, sha256: str,
              move: bool) -> Dataset:
        """Validate `source` and register it as a new dataset (moved or copied into `raw/`, or
        into the cache and uploaded to the artifact store before it is recorded)."""
        from forecasting.schema import read_table, validate_history

        frame = read_table(source)
        clean, _report = validate_history(frame)
        dates = clean["date"]
        start, end = (str(np.datetime64(dates.min(), "D")), str(np.datetime64(dates.max(), "D")))
        series = int(clean[["store_nbr", "family"]].drop_duplicates().shape[0])
        retailer = tenant.retailer
        self._s.registry.ensure_retailer(retailer)
        dataset_id = new_id("ds")
        objects = self._s.objects   # with an artifact store: kept in its cache, uploaded first
        dest = (self._s.storage.cached_dataset_path(retailer, dataset_id, fmt) if objects
                else self._s.storage.dataset_path(retailer, dataset_id, fmt))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:
            source.replace(dest)
        else:
            shutil.copyfile(source, dest)
        if objects is not None:
            try:
                objects.upload_dataset(dest, retailer, dataset_id, fmt)
            except BaseException:
                dest.unlink(missing_ok=True)
                raise
        dataset = Dataset(
            dataset_id=dataset_id, retailer=retailer, filename=filename, format=fmt, path=dest,
            size_bytes=dest.stat().st_size, sha256=sha256, rows=len(clean), series=series,
            start_date=start, end_date=end, created_at=time.time(),
        )
        self._s.registry.add_dataset(dataset)
        log.info("dataset stored", extra={"fields": {
            "retailer": retailer, "dataset_id": dataset_id, "rows": dataset.rows,
            "bytes": dataset.size_bytes}})
        return dataset

    def get(self, tenant: Tenant, dataset_id: str) -> Dataset:
        """The retailer's dataset; NotFound otherwise (also for another retailer's dataset)."""
        self._s.existing(tenant)
        found = self._s.registry.get_dataset(tenant.retailer, dataset_id)
        if found is None:
            raise NotFound("dataset", dataset_id)
        return found

    def newest(self, tenant: Tenant) -> Dataset:
        """The retailer's most recent upload (what Train uses when it names no dataset);
        FailedPrecondition when the retailer has uploaded none."""
        self._s.existing(tenant)
        found = self._s.registry.newest_dataset(tenant.retailer)
        if found is None:
            raise FailedPrecondition(f"retailer {tenant.retailer!r} has no dataset to train on: "
                                     "upload one first (UploadDataset), or give data_uri")
        return found

    def from_uri(self, tenant: Tenant, uri: str) -> Dataset:
        """Store the file a `file://` URI names (only with --allow-file-uris), confined to the
        retailer's own directory `<file_uri_root>/<retailer>/`.

        Every path that cannot be used gets the same answer, whether it exists or not, so the
        error tells nothing about the gateway's disk; a file outside the retailer's directory
        (symbolic links resolved) is never opened.
        """
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme != "file":
            raise InvalidArgument("data_uri", f"scheme {parsed.scheme or '(none)'!r} is not supported "
                                  "by this gateway; upload the file with UploadDataset")
        root = self._s.config.file_uri_root
        if not self._s.config.allow_file_uris or root is None:
            raise InvalidArgument("data_uri", "file:// URIs are disabled on this gateway "
                                  "(--allow-file-uris); upload the file with UploadDataset")
        unusable = InvalidArgument(
            "data_uri", "must name a readable .csv or .parquet file in this retailer's directory "
            "of the gateway's file root (file:///<root>/<retailer>/<name>)")
        if parsed.netloc not in ("", "localhost") or parsed.query or parsed.fragment:
            raise unusable
        allowed = Path(os.path.realpath(Path(root) / tenant.retailer))
        unquoted = urllib.parse.unquote(parsed.path)
        if "\x00" in unquoted:  # no file has such a name (os calls refuse it)
            raise unusable
        path = Path(os.path.realpath(unquoted))
        fmt = EXTENSIONS.get(path.suffix.lower())
        if fmt is None or not path.is_relative_to(allowed) or path == allowed or not path.is_file():
            raise unusable
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            raise unusable from None
        self._s.registry.ensure_retailer(tenant.retailer)
        return self.store(tenant, path.name, fmt, path, digest.hexdigest(), move=False)
