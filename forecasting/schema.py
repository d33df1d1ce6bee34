"""The store-sales data contract: reading CSV/Parquet and checking every row.

History rows (for training): ``date, store_nbr, family, sales[, onpromotion][, id]``.
Future rows (for forecasts): ``date, store_nbr, family[, onpromotion][, id]``.

Repaired (and counted in the report): a missing ``onpromotion`` column or null values in it
become 0; extra columns are ignored and listed. Everything else that breaks the contract is
rejected with a ``DataValidationError`` naming the column, the rule and a few example rows
(1-based data rows, the header not counted).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from forecasting.errors import DataValidationError
from forecasting.table_limits import check_csv_shape, check_parquet_shape

KEY_COLUMNS = ("date", "store_nbr", "family")
HISTORY_REQUIRED = (*KEY_COLUMNS, "sales")
FUTURE_REQUIRED = KEY_COLUMNS
OPTIONAL_COLUMNS = ("onpromotion", "id")
EXAMPLE_ROWS = 5
PARQUET_MAGIC = b"PAR1"

Source = str | os.PathLike | bytes | BinaryIO | pd.DataFrame


def read_table(source: Source) -> pd.DataFrame:
    """Read a CSV (UTF-8, with header) or Parquet table from a path, bytes or a binary file.

    The format is told by content (Parquet's magic bytes), not by the file name. Columns the
    contract knows are read with compact dtypes (categories for date and family).
    """
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DataValidationError(None, f"input file {str(path)!r} does not exist")
        with path.open("rb") as fh:
            head = fh.read(4)
        if path.stat().st_size == 0:
            raise DataValidationError(None, "input is empty")
        return _read_parquet(path) if head == PARQUET_MAGIC else _read_csv(path)
    data = source if isinstance(source, bytes) else source.read()
    if not data:
        raise DataValidationError(None, "input is empty")
    if data[:4] == PARQUET_MAGIC:
        return _read_parquet(io.BytesIO(data))
    return _read_csv(io.BytesIO(data))


def _read_csv(src) -> pd.DataFrame:
    check_csv_shape(src)  # column count and field length, before the parser sees the file
    try:
        return pd.read_csv(
            src,
            dtype={"date": "category", "family": "category"},
            encoding="utf-8",
            skipinitialspace=True,
            low_memory=False,
        )
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            None, f"input is not UTF-8 CSV or Parquet (undecodable byte at offset {exc.start})"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataValidationError(None, "input is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(None, f"input is not a readable CSV table: {first}") from None


def _read_parquet(src) -> pd.DataFrame:
    check_parquet_shape(src)  # column count, from the footer
    try:
        return _read_contract_columns(src)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for damaged files
        raise DataValidationError(None, f"input is not a readable Parquet file: {exc}") from None


def _read_contract_columns(src) -> pd.DataFrame:
    """Only the columns the contract knows, text columns as categories (pyarrow dictionaries):
    a 59M-row history never becomes 59M Python strings. The names of the columns not read
    are kept in ``attrs["unread_columns"]`` for the report's ``ignored_columns``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(src)
    schema = parquet.schema_arrow
    known = {*HISTORY_REQUIRED, *OPTIONAL_COLUMNS} - {"id"}   # the id is never used
    wanted = [f.name for f in schema if str(f.name).strip() in known]
    text = [name for name in wanted if pa.types.is_string(schema.field(name).type)
            or pa.types.is_large_string(schema.field(name).type)]
    table = pq.read_table(src, columns=wanted, read_dictionary=text)
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()   # the decoded pages, before validation runs
    frame.attrs["unread_columns"] = [f.name for f in schema if f.name not in wanted]
    return frame


def validate_history(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Check history rows; return the normalised frame and a report of what was repaired."""
    return _validate(raw, HISTORY_REQUIRED, with_sales=True)


def validate_future(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Check future rows (no ``sales``); keeps the caller's row order."""
    return _validate(raw, FUTURE_REQUIRED, with_sales=False)


def load_history(source: Source) -> tuple[pd.DataFrame, dict]:
    """``read_table`` then ``validate_history``."""
    return validate_history(read_table(source))


def _validate(raw: pd.DataFrame, required: tuple[str, ...], with_sales: bool):
    unread = raw.attrs.get("unread_columns", [])   # columns the Parquet reader skipped
    raw = raw.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        found = ", ".join(map(str, [*raw.columns, *unread][:12])) or "no columns"
        raise DataValidationError(missing[0], f"required column is missing (found: {found})")
    if len(raw) == 0:
        raise DataValidationError(None, "input has a header but no data rows")
    known = set(required) | set(OPTIONAL_COLUMNS) | ({"sales"} if with_sales else set())
    report: dict = {
        "rows_read": len(raw),
        "ignored_columns": [str(c) for c in raw.columns if c not in known]
        + [str(c).strip() for c in unread if str(c).strip() != "id"],
    }
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    out["date"] = _dates(raw["date"])
    out["store_nbr"] = _integers(raw["store_nbr"], "store_nbr", "must be a whole number >= 0")
    out["family"] = _families(raw["family"])
    if with_sales:
        out["sales"] = _sales(raw["sales"])
    if "onpromotion" in raw.columns:
        promo = raw["onpromotion"]
        nulls = promo.isna()
        report["onpromotion_nulls_filled"] = int(nulls.sum())
        out["onpromotion"] = _integers(
            promo.where(~nulls, 0), "onpromotion", "must be a whole number >= 0"
        )
    else:
        report["onpromotion_column_missing"] = True
        out["onpromotion"] = np.zeros(len(raw), dtype=np.int32)
    check_unique_keys(out)
    return out, report


def _bad(column: str, rule: str, mask: np.ndarray) -> None:
    if mask.any():
        idx = np.flatnonzero(mask)
        raise DataValidationError(column, rule, rows=(idx[:EXAMPLE_ROWS] + 1), count=len(idx))


def _dates(col: pd.Series) -> pd.Series:
    """Parse YYYY-MM-DD dates; categories are parsed once each, so 3M rows cost ~1700 parses."""
    if pd.api.types.is_datetime64_any_dtype(col):
        parsed = pd.to_datetime(col)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        _bad("date", "must be a date YYYY-MM-DD", parsed.isna().to_numpy())
        return parsed.dt.normalize().astype("datetime64[ns]")
    cat = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
    cats = pd.Index(cat.cat.categories.astype(str).str.strip())
    parsed_cats = pd.to_datetime(cats, format="%Y-%m-%d", errors="coerce")
    codes = cat.cat.codes.to_numpy()
    bad_cat = np.append(np.asarray(parsed_cats.isna()), True)  # code -1 (null) is bad too
    _bad("date", "must be a date YYYY-MM-DD", bad_cat[codes])
    values = np.asarray(parsed_cats.values, dtype="datetime64[ns]")[codes]
    return pd.Series(values, index=col.index)


def _numeric(col: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype("float64")
    return pd.to_numeric(col.astype("string").str.strip(), errors="coerce").astype("float64")


def _integers(col: pd.Series, name: str, rule: str) -> pd.Series:
    values = _numeric(col).to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
    bad |= values > np.iinfo(np.int32).max
    _bad(name, rule, bad)
    return pd.Series(values.astype(np.int32), index=col.index)


def _sales(col: pd.Series) -> pd.Series:
    values = _numeric(col).to_numpy()
    _bad("sales", "must be a number (not empty)", ~np.isfinite(values))
    _bad("sales", "must be >= 0", values < 0)
    return pd.Series(values, index=col.index)


def _families(col: pd.Series) -> pd.Series:
    cat = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
    stripped = pd.Index(cat.cat.categories.astype(str).str.strip())
    empty = np.append(np.asarray(stripped == ""), True)
    _bad("family", "must be a non-empty product family name", empty[cat.cat.codes.to_numpy()])
    # Names that change when stripped, or that become equal as text (a column of numbers and
    # strings, as pandas reads "22423" in one CSV chunk and "22423A" in another), are rebuilt.
    if not stripped.equals(pd.Index(cat.cat.categories.astype(str))) or not stripped.is_unique:
        cat = pd.Categorical(np.asarray(stripped)[cat.cat.codes.to_numpy()])
        return pd.Series(cat, index=col.index).astype("category")
    return pd.Series(cat.cat.rename_categories(stripped), index=col.index)


def check_unique_keys(frame: pd.DataFrame) -> None:
    """Each (date, store_nbr, family) once; the message names the duplicated rows."""
    dup = frame.duplicated(subset=list(KEY_COLUMNS), keep=False).to_numpy()
    _bad("date, store_nbr, family", "each (date, store_nbr, family) may appear only once", dup)
