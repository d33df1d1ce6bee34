"""A table's shape is checked before it is parsed: too many columns or too long a field is a
DataValidationError naming the line, found in one pass over the bytes."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from forecasting import table_limits
from forecasting.errors import DataValidationError
from forecasting.schema import read_table
from forecasting.table_limits import MAX_COLUMNS, MAX_FIELD_BYTES, check_csv_shape

HEADER = b"date,store_nbr,family,sales\n"
ROW = b"2017-01-01,1,BREAD,1\n"


def _message(data: bytes) -> str:
    with pytest.raises(DataValidationError) as info:
        read_table(data)
    return str(info.value)


def test_a_million_column_header_is_refused_before_parsing() -> None:
    header = b",".join(b"c%d" % i for i in range(1_000_000)) + b"\n" + ROW
    assert f"the header has at least 1,000,000 columns; a table may have at most {MAX_COLUMNS}" \
        in _message(header)


def test_a_wide_row_names_its_line() -> None:
    wide = HEADER + ROW + b",".join([b"1"] * (MAX_COLUMNS + 1)) + b"\n"
    assert f"line 3 has at least {MAX_COLUMNS + 1} columns" in _message(wide)


def test_a_long_field_names_its_line() -> None:
    long = HEADER + ROW + ROW.replace(b"BREAD", b"B" * (MAX_FIELD_BYTES + 1))
    assert f"line 3 has a field longer than {MAX_FIELD_BYTES:,} bytes" in _message(long)
    unterminated = HEADER + b"2017-01-01,1," + b"B" * (MAX_FIELD_BYTES + 1)
    assert "line 2 has a field longer" in _message(unterminated)


def test_at_the_limits_the_table_is_read(monkeypatch) -> None:
    monkeypatch.setattr(table_limits, "SCAN_BLOCK_BYTES", 7)  # lines and fields span blocks
    widest = b",".join(b"c%d" % i for i in range(MAX_COLUMNS - 4)) + b"," + HEADER
    longest = b"2017-01-01,1," + b"B" * MAX_FIELD_BYTES + b",1\n"
    check_csv_shape(widest + longest)
    check_csv_shape(io.BytesIO(HEADER + longest))
    frame = read_table(HEADER + longest)
    assert frame["family"].astype(str).str.len().tolist() == [MAX_FIELD_BYTES]


def test_a_file_object_is_put_back_where_it_stood() -> None:
    fh = io.BytesIO(HEADER + ROW)
    fh.read(4)
    check_csv_shape(fh)
    assert fh.tell() == 4


def test_a_wide_parquet_file_is_refused_from_its_footer(tmp_path) -> None:
    path = tmp_path / "wide.parquet"
    pd.DataFrame({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)}).to_parquet(path)
    with pytest.raises(DataValidationError, match=f"{MAX_COLUMNS + 1} columns"):
        read_table(path)
