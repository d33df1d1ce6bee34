"""Tables in and out of the CLI: CSV or Parquet files, and `-` for stdin/stdout (CSV)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from forecast_client.cli.messages import UsageError

if TYPE_CHECKING:
    import pandas as pd

#: The name that means stdin (input) or stdout (output).
STDIO = "-"
PARQUET_SUFFIXES = (".parquet", ".pq")


def need_pandas(command: str) -> None:
    """UsageError naming the extra to install when pandas is missing."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise UsageError(f"{command} needs pandas: pip install 'forecast-client[pandas]'") from None


def check_output(flag: str, name: str, suffixes: tuple[str, ...] = (".csv", *PARQUET_SUFFIXES),
                 kinds: str = "a .csv or .parquet file, or - for stdout") -> None:
    """An output name must be `-` or end in one of `suffixes`, in a directory that exists;
    checked before any call (a typo in the directory is not silently created)."""
    if name == STDIO and "stdout" in kinds:
        return
    path = Path(name)
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {name}: name {kinds}")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {name}: the directory {path.parent} does not exist "
                         "(create it first)")


def read_frame(flag: str, name: str, dtypes: dict[str, str] | None = None,
               stdin: TextIO | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file (or CSV from stdin for `-`); one-line UsageError otherwise."""
    import pandas as pd

    dtypes = {"family": "str", **(dtypes or {})}
    label = "stdin" if name == STDIO else name
    path = Path(name)
    if name != STDIO and not path.is_file():
        raise UsageError(f"{flag} {name}: no such file")
    try:
        if name == STDIO:
            return pd.read_csv(stdin or sys.stdin, dtype=dtypes)
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=dtypes)
    except ImportError as exc:  # Parquet without pyarrow
        raise UsageError(f"{flag} {label}: {exc}") from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{flag} {label}: it is empty; expected a CSV header line") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        what = "CSV" if name == STDIO else (path.suffix.lstrip(".") or "CSV")
        detail = " ".join(str(exc).split())
        raise UsageError(f"{flag} {label}: cannot read it as {what}: {detail}") from None


def write_frame(frame: pd.DataFrame, name: str, out: TextIO) -> str:
    """Write `frame` to `name` (CSV to `out` for `-`); returns where it went, in words."""
    if name == STDIO:
        frame.to_csv(out, index=False)
        out.flush()
        return "stdout"
    path = Path(name)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return str(path)
