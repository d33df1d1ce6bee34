"""Forecasts: `forecast predict`."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from forecast_client.cli.files import STDIO, check_output, need_pandas, read_frame, write_frame
from forecast_client.cli.messages import EXIT_OK, UsageError
from forecast_client.cli.parsing import Commands, add_model_version, add_quiet, positive_int
from forecast_client.client import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_IN_FLIGHT, ForecastClient
from forecast_client.progress import ProgressLine


def cmd_predict(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Forecast the rows of --input; write them with `sales` added to --output."""
    check_output("--output", args.output)
    need_pandas("predict")
    frame = read_frame("--input", args.input)
    started = time.monotonic()
    progress = ProgressLine(err, not args.quiet and len(frame) > args.chunk_rows)

    def report(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        rate = done / max(elapsed, 1e-9)
        progress.show(f"{done:,}/{total:,} rows ({rate:,.0f} rows/s)", done / total,
                      elapsed_s=elapsed)

    try:
        result = client.predict_frame(args.retailer, frame, model_version=args.model_version,
                                      chunk_rows=args.chunk_rows,
                                      max_in_flight=args.max_in_flight, on_progress=report)
    except ValueError as exc:  # the input cannot be turned into rows
        label = "stdin" if args.input == STDIO else args.input
        raise UsageError(f"--input {label}: {exc}") from None
    progress.done()
    where = write_frame(result, args.output, out)
    err.write(f"wrote {len(result):,} forecasts to {where} in "
              f"{time.monotonic() - started:.1f} s\n")
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `predict`."""
    p = commands.add(
        "predict", "forecast every row of a file (streamed in chunks)",
        "Forecast future rows (date, store_nbr, family[, onpromotion]) read from a CSV or Parquet "
        "file (- reads CSV from stdin), streamed to the gateway in chunks. Writes the input "
        "columns plus `sales`, in the input's row order, to --output (.csv, .parquet, or - for "
        "CSV on stdout).", cmd_predict)
    p.add_argument("--input", required=True, metavar="FILE",
                   help="future rows (.csv or .parquet; - for CSV on stdin)")
    p.add_argument("--output", default=STDIO, metavar="FILE",
                   help="where to write the forecasts (.csv or .parquet; default -: CSV on "
                        "stdout)")
    add_model_version(p)
    p.add_argument("--chunk-rows", type=positive_int, default=DEFAULT_CHUNK_ROWS,
                   help="rows per streamed chunk (default %(default)s)")
    p.add_argument("--max-in-flight", type=positive_int, default=DEFAULT_MAX_IN_FLIGHT,
                   help="chunks sent ahead of answers (default %(default)s)")
    add_quiet(p)
