"""An export's file, written a chunk of rows at a time, so memory holds one chunk, not the file.

The columns are those of the SDK's `ForecastClient.forecast` frame, so a consumer reading the
file gets what the RPC answers: `date` (a date; YYYY-MM-DD in CSV), `store_nbr`, `family`,
`onpromotion` (0: exports assume no promotions), `sales` (the forecast, daily unit sales) and,
per level, `lo-<level>` and `hi-<level>`. Parquet files get one row group per chunk, and the model
version and days in the file's key-value metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from forecast_gateway.domain import RowColumns


def level_name(level: float) -> str:
    """80.0 -> "80", 97.5 -> "97.5" (the SDK's frame columns)."""
    return f"{level:g}"


def schema(levels: list[float], metadata: dict[str, str] | None = None) -> pa.Schema:
    """The file's columns for `levels`."""
    fields = [pa.field("date", pa.date32()), pa.field("store_nbr", pa.int32()),
              pa.field("family", pa.string()), pa.field("onpromotion", pa.int32()),
              pa.field("sales", pa.float64())]
    for level in levels:
        fields += [pa.field(f"lo-{level_name(level)}", pa.float64()),
                   pa.field(f"hi-{level_name(level)}", pa.float64())]
    return pa.schema(fields, metadata=metadata)


class ChunkWriter:
    """Appends chunks to `path` as Parquet or CSV; `close` finishes the file."""

    def __init__(self, path: Path, fmt: str, levels: list[float], metadata: dict[str, str]):
        self._levels = levels
        self._schema = schema(levels, metadata)
        self._fmt = fmt
        if fmt == "parquet":
            self._writer: pq.ParquetWriter | pacsv.CSVWriter = pq.ParquetWriter(
                str(path), self._schema, compression="zstd")
        else:
            self._writer = pacsv.CSVWriter(str(path), self._schema.remove_metadata())
        self.rows = 0

    def write(self, rows: RowColumns, values: np.ndarray,
              bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> None:
        """One chunk: the rows forecast, their forecasts and the bounds per level."""
        promo = np.zeros(len(rows), np.int32) if rows.onpromotion is None else rows.onpromotion
        columns = [pa.array(rows.day.astype(np.int32), pa.int32()).cast(pa.date32()),
                   pa.array(rows.store_nbr.astype(np.int32)), pa.array(rows.family.astype(str)),
                   pa.array(promo.astype(np.int32)), pa.array(values.astype(np.float64))]
        for level in self._levels:
            lower, upper = bounds[level]
            columns += [pa.array(np.asarray(lower, np.float64)),
                        pa.array(np.asarray(upper, np.float64))]
        table = pa.Table.from_arrays(columns, schema=self._schema if self._fmt == "parquet"
                                     else self._schema.remove_metadata())
        self._writer.write_table(table)
        self.rows += len(rows)

    def close(self) -> None:
        """Finish the file (the Parquet footer)."""
        self._writer.close()
