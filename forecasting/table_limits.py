"""Limits on the shape of an input table, checked before it is parsed.

A parser given a 1,000,000-column header or a 500 MB field spends minutes and gigabytes before
it can say anything. `check_csv_shape` scans the raw bytes once, in blocks, with numpy (about
the speed of reading the file) and stops at the first block that breaks a limit; Parquet files
are checked from their footer (`check_parquet_shape`). The store-sales contract has six columns
and short fields, so the limits are far above any real file (docs/data.md lists them).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from forecasting.errors import DataValidationError

MAX_COLUMNS = 256
"""Most columns in a table (the header or any CSV row); extra columns are ignored, but read."""
MAX_FIELD_BYTES = 4096
"""Longest CSV field, in bytes (a value between two commas or line ends)."""
SCAN_BLOCK_BYTES = 8 << 20
_NEWLINE = ord("\n")


def check_csv_shape(src: str | os.PathLike | BinaryIO | bytes) -> None:
    """Raise DataValidationError when a line has more than MAX_COLUMNS fields or a field is
    longer than MAX_FIELD_BYTES. A file object is read from where it stands and put back there.

    Separators are counted without reading CSV quoting, so a quoted field that holds commas
    counts as several (shorter) fields: the check can only be stricter on such rows.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        _scan(io.BytesIO(src))
    elif isinstance(src, (str, os.PathLike)):
        with Path(src).open("rb") as fh:
            _scan(fh)
    else:
        start = src.tell()
        try:
            _scan(src)
        finally:
            src.seek(start)


def _scan(fh: BinaryIO) -> None:
    # Only a line of at least MAX_COLUMNS - 1 bytes can hold MAX_COLUMNS commas, and only a line
    # longer than MAX_FIELD_BYTES can hold a too-long field: numpy finds the line ends of each
    # block, and only such long lines (none in a store-sales file) are split in Python.
    suspect = min(MAX_COLUMNS - 1, MAX_FIELD_BYTES + 1)
    longest_valid_line = MAX_COLUMNS * (MAX_FIELD_BYTES + 1)
    line = 1      # 1-based line number of the file at the start of `buf` (the header is 1)
    carry = b""   # the unfinished last line of the blocks read so far
    while block := fh.read(SCAN_BLOCK_BYTES):
        buf = carry + block if carry else block
        ends = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == _NEWLINE)
        if ends.size:
            starts = np.concatenate(([0], ends[:-1] + 1))
            for i in np.flatnonzero(ends - starts >= suspect):
                _check_line(buf[starts[i]:ends[i]], line + int(i))
            line += int(ends.size)
            carry = buf[int(ends[-1]) + 1:]
        else:
            carry = buf
        if len(carry) > longest_valid_line:  # cannot be valid: say why without reading on
            _check_line(carry, line)
    if carry:
        _check_line(carry, line)


def _check_line(text: bytes, line: int) -> None:
    fields = text.count(b",") + 1
    if fields > MAX_COLUMNS:
        _too_wide(line, fields)
    if len(text) > MAX_FIELD_BYTES and max(map(len, text.split(b","))) > MAX_FIELD_BYTES:
        _too_long(line)


def _too_wide(line: int, fields: int) -> None:
    where = "the header" if line == 1 else f"line {line:,}"
    raise DataValidationError(None, f"{where} has at least {fields:,} columns; a table may have "
                              f"at most {MAX_COLUMNS:,}")


def _too_long(line: int) -> None:
    where = "the header" if line == 1 else f"line {line:,}"
    raise DataValidationError(None, f"{where} has a field longer than {MAX_FIELD_BYTES:,} bytes "
                              "(the longest a field may be)")


def check_parquet_shape(src: str | os.PathLike | BinaryIO) -> None:
    """Raise DataValidationError when the Parquet schema has more than MAX_COLUMNS columns
    (read from the footer, before any data page)."""
    import pyarrow.parquet as pq

    start = None if isinstance(src, (str, os.PathLike)) else src.tell()
    try:
        columns = pq.read_metadata(src).num_columns
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for damaged files
        raise DataValidationError(None, f"input is not a readable Parquet file: {exc}") from None
    finally:
        if start is not None:
            src.seek(start)  # type: ignore[union-attr]
    if columns > MAX_COLUMNS:
        raise DataValidationError(None, f"the table has {columns:,} columns; a table may have "
                                  f"at most {MAX_COLUMNS:,}")
