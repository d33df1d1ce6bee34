"""Where an export may write: a destination URI checked against the retailer's own scope.

The rules are those of `Train.data_uri` (docs/security.md), applied to writing:

- `file:///path/name.parquet`: only with `--allow-file-uris` (FAILED_PRECONDITION without),
  and only inside the retailer's directory of the file root, `<file_uri_root>/<retailer>/`
  (symbolic links and `..` resolved; the directory the file goes into must exist). Every
  unusable path gets the same answer, so the error says nothing about the gateway's disk.
- `s3://bucket/key.parquet`: only with `--export-store s3://B/P` (FAILED_PRECONDITION
  without), and only under the retailer's own prefix `s3://B/P/<retailer>/`. The gateway's AWS
  credentials never write anywhere a retailer names, so one retailer cannot overwrite another's
  files, the artifact store or any other bucket those credentials reach.

The file's name ends in `.parquet` or `.csv`, which gives the format unless it is asked.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.config import GatewayConfig
from forecast_gateway.errors import FailedPrecondition, InvalidArgument

FIELD = "destination"
EXTENSIONS = {".parquet": "parquet", ".csv": "csv"}
MAX_URI_CHARS = 1024


@dataclass(frozen=True)
class Destination:
    """A checked destination: a local file (`path`) or an S3 object (`layout` + `key`)."""

    uri: str
    format: str                      # "parquet" | "csv"
    path: Path | None = None         # file://
    layout: S3Layout | None = None   # s3://, the export store's bucket
    key: str = ""

    @property
    def result_uri(self) -> str:
        """The URI of the written file (normalized: `file://<resolved path>`, `s3://b/k`)."""
        if self.path is not None:
            return self.path.as_uri()
        assert self.layout is not None
        return self.layout.uri(self.key)


def parse(config: GatewayConfig, retailer: str, uri: str, fmt: str) -> Destination:
    """Check `uri` against the rules of the module docstring; InvalidArgument naming the field."""
    if not uri:
        raise InvalidArgument(FIELD, "is required (s3://... under the export store, or "
                                     "file://... with --allow-file-uris)")
    if len(uri) > MAX_URI_CHARS or any(not c.isprintable() for c in uri):
        raise InvalidArgument(FIELD, f"must be at most {MAX_URI_CHARS} printable characters")
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "s3":
        return _s3(config, retailer, uri, parsed, fmt)
    if parsed.scheme == "file":
        return _file(config, retailer, uri, parsed, fmt)
    raise InvalidArgument(FIELD, f"scheme {parsed.scheme or '(none)'!r} is not supported: "
                                 "use s3://... or file://...")


def _format(name: str, fmt: str) -> str:
    found = EXTENSIONS.get(PurePosixPath(name).suffix.lower())
    if found is None:
        raise InvalidArgument(FIELD, f"must name a file ending in .parquet or .csv, got "
                                     f"{PurePosixPath(name).name[:100]!r}")
    if fmt and fmt != found:
        raise InvalidArgument("format", f"{fmt} does not match the destination's extension "
                                        f"(.{found})")
    return found


def _s3(config: GatewayConfig, retailer: str, uri: str, parsed: urllib.parse.ParseResult,
        fmt: str) -> Destination:
    if not config.export_store:
        raise FailedPrecondition("s3:// export destinations are disabled on this gateway (it "
                                 "has no --export-store)")
    store = S3Layout.from_uri(config.export_store, "export_store")
    scope = store.uri(store.key(retailer)) + "/"
    if parsed.query or parsed.fragment or parsed.params:
        raise InvalidArgument(FIELD, f"must be a plain object URI under {scope}")
    key = parsed.path.lstrip("/")
    parts = key.split("/")
    if (parsed.netloc != store.bucket or not key.startswith(store.key(retailer) + "/")
            or any(p in ("", ".", "..") for p in parts)):
        raise InvalidArgument(FIELD, f"must lie under this retailer's export prefix {scope} "
                                     f"(got {uri[:200]!r})")
    return Destination(uri, _format(key, fmt), layout=store, key=key)


def _file(config: GatewayConfig, retailer: str, uri: str, parsed: urllib.parse.ParseResult,
          fmt: str) -> Destination:
    root = config.file_uri_root
    if not config.allow_file_uris or root is None:
        raise FailedPrecondition("file:// export destinations are disabled on this gateway "
                                 "(--allow-file-uris); export to s3:// instead")
    unusable = InvalidArgument(FIELD, "must name a .parquet or .csv file in an existing "
                                      "directory of this retailer's directory of the gateway's "
                                      "file root (file:///<root>/<retailer>/<name>)")
    if parsed.netloc not in ("", "localhost") or parsed.query or parsed.fragment:
        raise unusable
    unquoted = urllib.parse.unquote(parsed.path)
    if "\x00" in unquoted or unquoted.endswith("/"):
        raise unusable
    allowed = Path(os.path.realpath(Path(root) / retailer))
    path = Path(os.path.realpath(unquoted))
    if (not path.is_relative_to(allowed) or path == allowed or not path.parent.is_dir()
            or path.is_dir() or PurePosixPath(path.name).suffix.lower() not in EXTENSIONS):
        raise unusable
    return Destination(uri, _format(path.name, fmt), path=path)
