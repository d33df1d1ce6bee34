"""Turning rows into the API's columnar `RowBatch` and back.

Works with plain Python sequences; uses numpy/pandas when they are installed (faster, and
DataFrames in and out).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.extras import require

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    #: Forecast values, float64, one per row (a plain list when numpy is not installed).
    Forecasts = NDArray[np.float64]

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
#: The columns a frame of future rows needs (onpromotion is optional).
REQUIRED_COLUMNS = ("date", "store_nbr", "family")

try:  # optional speed-ups
    import numpy as _np
except ImportError:  # pragma: no cover - the SDK works without numpy
    _np = None  # type: ignore[assignment]


def day_number(value: Any) -> int:
    """Days since 1970-01-01 for a 'YYYY-MM-DD' string, a date or a datetime."""
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        return value.toordinal() - _EPOCH_ORDINAL
    try:
        return _dt.date.fromisoformat(str(value)[:10]).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError(f"date: {value!r} is not a YYYY-MM-DD date") from None


def day_to_iso(day: int) -> str:
    """The 'YYYY-MM-DD' string of a day number (days since 1970-01-01)."""
    return _dt.date.fromordinal(int(day) + _EPOCH_ORDINAL).isoformat()


def _days(dates: Any) -> list[int]:
    if _np is not None:
        try:
            import pandas as _pd

            if isinstance(dates, (_pd.Series, _pd.Index)):
                # ISO 8601 only: pandas would otherwise guess at 16/08/2017 or 08/16/2017.
                parsed = _pd.to_datetime(dates, errors="raise", format="ISO8601")
                missing = _np.flatnonzero(_pd.isna(parsed))
                if len(missing):
                    raise ValueError(f"date: missing in {len(missing)} row(s), the first at "
                                     f"position {missing[0]}")
                values = parsed.to_numpy(dtype="datetime64[ns]")
                return values.astype("datetime64[D]").astype(_np.int64).tolist()
        except ImportError:
            pass
        except (ValueError, TypeError) as exc:
            if str(exc).startswith("date: "):
                raise
            return [day_number(d) for d in dates]  # names the first value that is no date
        arr = _np.asarray(dates)
        if arr.dtype.kind == "M":
            return arr.astype("datetime64[D]").astype(_np.int64).tolist()
        if arr.dtype.kind in "US":
            try:
                return arr.astype("datetime64[D]").astype(_np.int64).tolist()
            except ValueError:
                pass  # fall back to the per-value parser, which names the bad value
    return [day_number(d) for d in dates]


def _ints(values: Any, name: str) -> list[int]:
    if _np is not None:
        arr = _np.asarray(values)
        if arr.dtype.kind in "iub":
            return arr.astype(_np.int64).tolist()
        if arr.dtype.kind == "f":
            if _np.isnan(arr).any():
                raise ValueError(f"{name}: missing values are not allowed")
            if (arr != _np.round(arr)).any():
                raise ValueError(f"{name}: values must be whole numbers")
            return arr.astype(_np.int64).tolist()
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: values must be integers") from None


def ints(values: Any, name: str) -> list[int]:
    """Whole numbers from a sequence or array; ValueError naming `name` otherwise."""
    return _ints(values, name)


def floats(values: Any, name: str) -> list[float]:
    """Finite numbers from a sequence or array; ValueError naming `name` otherwise."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: values must be numbers") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name}: missing or infinite values are not allowed")
    return out


def make_batch(
    date: Any, store_nbr: Any, family: Any, onpromotion: Any | None = None
) -> pb.RowBatch:
    """Build a RowBatch from columns of equal length (lists, numpy arrays or pandas Series)."""
    days = _days(date)
    stores = _ints(store_nbr, "store_nbr")
    families = [str(f) for f in (family.tolist() if hasattr(family, "tolist") else family)]
    n = len(days)
    for name, col in (("store_nbr", stores), ("family", families)):
        if len(col) != n:
            raise ValueError(f"{name}: {len(col)} values but {n} dates")
    batch = pb.RowBatch()
    batch.day.extend(days)
    batch.store_nbr.extend(stores)
    batch.family.extend(families)
    if onpromotion is not None:
        promo = _ints(onpromotion, "onpromotion")
        if len(promo) != n:
            raise ValueError(f"onpromotion: {len(promo)} values but {n} dates")
        batch.onpromotion.extend(promo)
    return batch


def series_codes(frame: Any) -> Any:
    """One integer per row of a pandas DataFrame naming its series (store_nbr, family).

    Raises ValueError when a required column is missing.
    """
    pd = require("pandas", "a DataFrame of rows")

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"input is missing column(s): {', '.join(missing)}")
    keys = pd.MultiIndex.from_arrays([frame["store_nbr"].to_numpy(),
                                      frame["family"].astype(str).to_numpy()])
    codes, _ = pd.factorize(keys)
    return codes


def series_order(codes: Any) -> Any:
    """A stable permutation that puts each series' rows next to each other (`codes` from
    `series_codes`).

    A series' forecast for day d depends on its promotions of the earlier days, which the
    gateway takes from the same chunk; so a bulk stream must never split a series.
    """
    return _np.argsort(codes, kind="stable")


def series_cuts(codes: Any, chunk_rows: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of at most `chunk_rows` rows that never split a series.

    `codes` must be in `series_order`. A series longer than `chunk_rows` gets a chunk of its own.
    """
    starts = _np.flatnonzero(_np.r_[True, codes[1:] != codes[:-1]]).tolist() + [len(codes)]
    cuts: list[tuple[int, int]] = []
    begin = 0
    for here, nxt in itertools.pairwise(starts):
        if nxt - begin > chunk_rows and here > begin:
            cuts.append((begin, here))
            begin = here
    if begin < len(codes):
        cuts.append((begin, len(codes)))
    return cuts


def frame_batches(frame: Any, chunk_rows: int, codes: Any) -> Iterator[pb.RowBatch]:
    """Split a pandas DataFrame of future rows, already in `series_order` (`codes` its series
    codes, in the same order), into RowBatches of at most `chunk_rows` rows that never split a
    series.

    The frame needs `date`, `store_nbr` and `family`; `onpromotion` is sent when present.
    Columns are converted once for the whole frame, here (so a bad value raises ValueError at
    this call, not inside the stream), then sliced lazily.
    """
    if chunk_rows <= 0:
        raise ValueError("chunk_rows must be positive")
    days = _days(frame["date"])
    stores = _ints(frame["store_nbr"].to_numpy(), "store_nbr")
    families = frame["family"].astype(str).tolist()
    promo = _ints(frame["onpromotion"].to_numpy(), "onpromotion") if "onpromotion" in frame.columns else None
    return _sliced_batches(days, stores, families, promo, series_cuts(codes, chunk_rows))


def _sliced_batches(days: list[int], stores: list[int], families: list[str],
                    promo: list[int] | None,
                    cuts: list[tuple[int, int]]) -> Iterator[pb.RowBatch]:
    for start, stop in cuts:
        batch = pb.RowBatch()
        batch.day.extend(days[start:stop])
        batch.store_nbr.extend(stores[start:stop])
        batch.family.extend(families[start:stop])
        if promo is not None:
            batch.onpromotion.extend(promo[start:stop])
        yield batch


def forecasts(values: Sequence[float]) -> Forecasts:
    """The forecast values of a response: a float64 numpy array when numpy is installed."""
    if _np is not None:
        return _np.asarray(values, dtype=_np.float64)
    return list(values)  # type: ignore[return-value,unused-ignore]  # no numpy: a list
