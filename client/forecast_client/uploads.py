"""Files sent in chunks (UploadDataset, AppendActuals): one way to open the source and cut it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Self

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb

#: Bytes per upload message (the gateway accepts up to 4 MiB per chunk).
UPLOAD_CHUNK_BYTES = 1024 * 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024

_FORMATS = {
    "csv": pb.DATASET_FORMAT_CSV,
    "parquet": pb.DATASET_FORMAT_PARQUET,
    "pq": pb.DATASET_FORMAT_PARQUET,
}


class UploadSource:
    """An open upload: its file name, size (None when unknown), format and bytes.

    Use as a context manager; a file it opened is closed on exit.
    """

    def __init__(self, source: str | Path | bytes | BinaryIO, filename: str | None,
                 format: str | None, chunk_bytes: int):
        if chunk_bytes <= 0 or chunk_bytes > MAX_CHUNK_BYTES:
            raise ValueError("chunk_bytes must be between 1 and 4 MiB")
        self.chunk_bytes = chunk_bytes
        self._owned = isinstance(source, (str, Path))
        if isinstance(source, (str, Path)):
            path = Path(source)
            self.filename = filename or path.name
            self.total: int | None = path.stat().st_size
            self.stream: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in __exit__
        elif isinstance(source, (bytes, bytearray)):
            self.filename = filename or ""
            self.stream, self.total = io.BytesIO(bytes(source)), len(source)
        else:
            self.filename = filename or ""
            self.stream, self.total = source, None
        if not self.filename:
            self.close()
            raise ValueError("filename is required when uploading bytes or a file object")
        self.format = pb.DATASET_FORMAT_UNSPECIFIED
        if format is not None:
            try:
                self.format = _FORMATS[format.lower().lstrip(".")]
            except KeyError:
                self.close()
                raise ValueError(f"format must be csv or parquet, got {format!r}") from None

    def chunks(self, on_progress: Callable[[int, int | None], None] | None = None
               ) -> Iterator[bytes]:
        """The bytes in order; `on_progress(sent, total)` after each chunk."""
        sent = 0
        while chunk := self.stream.read(self.chunk_bytes):
            sent += len(chunk)
            yield chunk
            if on_progress is not None:
                on_progress(sent, self.total)

    def close(self) -> None:
        """Close the file if this source opened it."""
        if self._owned:
            self.stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
