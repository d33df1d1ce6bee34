"""Forecasts and what they mean for stock: `forecast predict` and `forecast turnover`."""

from __future__ import annotations

import argparse
import math
import time
from typing import TYPE_CHECKING, TextIO

from forecast_client.cli.files import STDIO, check_output, need_pandas, read_frame, write_frame
from forecast_client.cli.messages import EXIT_OK, UsageError
from forecast_client.cli.output import table
from forecast_client.cli.parsing import (
    Commands,
    add_levels,
    add_model_version,
    add_quiet,
    horizon_days,
    positive_int,
)
from forecast_client.client import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_IN_FLIGHT, ForecastClient
from forecast_client.progress import ProgressLine

if TYPE_CHECKING:
    import pandas as pd


def optional_frame(flag: str, name: str | None) -> pd.DataFrame | None:
    """A --promotions/--receipts file, or None when the flag was not given."""
    return None if name is None else read_frame(flag, name)


def label(name: str) -> str:
    """A file name as messages say it (stdin for -)."""
    return "stdin" if name == STDIO else name


def cmd_predict(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Forecast the next --days days, or the rows of --input; write them to --output."""
    check_output("--output", args.output)
    need_pandas("predict")
    levels = args.levels or ()
    started = time.monotonic()
    if args.days is not None:
        promotions = optional_frame("--promotions", args.promotions)
        try:
            result = client.forecast(args.retailer, args.days, levels=levels,
                                     stores=args.stores, families=args.families,
                                     promotions=promotions, model_version=args.model_version)
        except ValueError as exc:
            where = f"--promotions {label(args.promotions)}: " if args.promotions else ""
            raise UsageError(f"{where}{exc}") from None
    else:
        if args.stores or args.families or args.promotions:
            raise UsageError("--stores, --families and --promotions go with --days; with --input "
                             "the file says which rows to forecast")
        frame = read_frame("--input", args.input)
        progress = ProgressLine(err, not args.quiet and len(frame) > args.chunk_rows)

        def report(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            progress.show(f"{done:,}/{total:,} rows ({done / max(elapsed, 1e-9):,.0f} rows/s)",
                          done / total, elapsed_s=elapsed)

        try:
            result = client.predict_frame(args.retailer, frame, model_version=args.model_version,
                                          levels=levels, chunk_rows=args.chunk_rows,
                                          max_in_flight=args.max_in_flight, on_progress=report)
        except ValueError as exc:  # the input cannot be turned into rows
            raise UsageError(f"--input {label(args.input)}: {exc}") from None
        progress.done()
    where = write_frame(result, args.output, out)
    err.writelines(f"warning: {warning}\n" for warning in result.attrs.get("warnings", ()))
    err.write(f"wrote {len(result):,} forecasts to {where} in "
              f"{time.monotonic() - started:.1f} s\n")
    return EXIT_OK


def cmd_turnover(client: ForecastClient, args: argparse.Namespace, out: TextIO,
                 err: TextIO) -> int:
    """Days of supply per series of --inventory: a table, or a file with --output."""
    if args.output is not None:
        check_output("--output", args.output)
    need_pandas("turnover")
    inventory = read_frame("--inventory", args.inventory)
    receipts = optional_frame("--receipts", args.receipts)
    promotions = optional_frame("--promotions", args.promotions)
    try:
        result = client.turnover(args.retailer, inventory, days=args.days or 0,
                                 receipts=receipts, lead_time_days=args.lead_time or 0,
                                 promotions=promotions, model_version=args.model_version)
    except ValueError as exc:  # a column is missing or a value is not a number
        raise UsageError(f"{_culprit(str(exc), args)}: {exc}") from None
    if args.output is not None:
        where = write_frame(result, args.output, out)
        err.write(f"wrote days of supply of {len(result):,} series to {where}\n")
        return EXIT_OK
    days, lead = result.attrs.get("days", 0), result.attrs.get("lead_time_days", 0)
    out.write(f"model {result.attrs.get('model_version', '-')}: {days} days from "
              f"{result.attrs.get('first_date', '-')}, stockout risk within {lead} days\n")
    rows = []
    for r in result.sort_values(["days_of_supply", "store_nbr", "family"]).itertuples():
        supply = f"> {days}" if r.beyond_horizon else f"{r.days_of_supply:.1f}"
        turns = "-" if math.isnan(r.turnover) else f"{r.turnover:.2f}"
        rows.append([str(r.store_nbr), str(r.family), f"{r.on_hand:g}", f"{r.receipts:g}",
                     f"{r.demand:.1f}", supply, turns, f"{r.stockout_probability * 100:.0f}%"])
    table(rows, ["STORE", "FAMILY", "ON HAND", "RECEIPTS", "DEMAND", "DAYS OF SUPPLY",
                 "TURNOVER", f"STOCKOUT <= {lead}D"], out)
    return EXIT_OK


def _culprit(message: str, args: argparse.Namespace) -> str:
    """The flag and file a local ValueError is about (the SDK names the table first)."""
    for flag, name in (("--receipts", args.receipts), ("--promotions", args.promotions)):
        if name is not None and message.startswith(flag.lstrip("-")):
            return f"{flag} {label(name)}"
    return f"--inventory {label(args.inventory)}"


def register(commands: Commands) -> None:
    """Add `predict` and `turnover`."""
    p = commands.add(
        "predict", "forecast the next N days (--days) or every row of a file (--input)",
        "--days N forecasts every series of the retailer (or --stores/--families) for the N "
        "days after the model's history; --promotions FILE (date, store_nbr, family, "
        "onpromotion) lists known promotions, others have none.\n\n"
        "--input FILE forecasts the rows of a CSV or Parquet file (date, store_nbr, family"
        "[, onpromotion]; - reads CSV from stdin), streamed in chunks; other columns such as "
        "`id` are kept, in the input's order.\n\n"
        "Writes the rows plus `sales` (and lo-80/hi-80 ... with --levels) to --output: "
        ".csv, .parquet, or - for CSV on stdout (the default).", cmd_predict)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--days", type=horizon_days, metavar="N",
                      help="forecast the N days after the model's history (e.g. 16)")
    what.add_argument("--input", metavar="FILE",
                      help="forecast the rows of FILE (.csv or .parquet; - for CSV on stdin)")
    p.add_argument("--output", default=STDIO, metavar="FILE",
                   help="where to write the forecasts (.csv or .parquet; default -: CSV on "
                        "stdout)")
    add_levels(p)
    p.add_argument("--stores", nargs="+", type=int, metavar="STORE",
                   help="with --days: only these store numbers")
    p.add_argument("--families", nargs="+", metavar="FAMILY",
                   help="with --days: only these product families (quote names with spaces)")
    p.add_argument("--promotions", metavar="FILE",
                   help="with --days: known promotions (date, store_nbr, family, onpromotion)")
    add_model_version(p)
    p.add_argument("--chunk-rows", type=positive_int, default=DEFAULT_CHUNK_ROWS,
                   help="with --input: rows per streamed chunk (default %(default)s)")
    p.add_argument("--max-in-flight", type=positive_int, default=DEFAULT_MAX_IN_FLIGHT,
                   help="with --input: chunks sent ahead of answers (default %(default)s)")
    add_quiet(p)

    p = commands.add(
        "turnover", "days of supply: how long the stock on hand lasts against the forecast",
        "For each (store_nbr, family) of --inventory (columns store_nbr, family, on_hand: "
        "units at the end of the model's last history day): the days until the cumulative "
        "forecast demand uses up the stock (plus --receipts: date, store_nbr, family, "
        "quantity), the demand and turnover over the horizon, and the probability of a "
        "stockout within --lead-time days. Prints a table, shortest supply first, or writes "
        "--output (.csv, .parquet, - for CSV on stdout).", cmd_turnover)
    p.add_argument("--inventory", required=True, metavar="FILE",
                   help="stock on hand (.csv or .parquet; - for CSV on stdin)")
    p.add_argument("--receipts", metavar="FILE", help="scheduled receipts (optional)")
    p.add_argument("--lead-time", type=positive_int, metavar="DAYS",
                   help="days for the stockout probability (default 7, or the horizon if "
                        "shorter)")
    p.add_argument("--days", type=horizon_days, metavar="N",
                   help="horizon in days (default: the model's horizon)")
    p.add_argument("--promotions", metavar="FILE",
                   help="known promotions (date, store_nbr, family, onpromotion)")
    p.add_argument("--output", metavar="FILE", help="write the result instead of a table")
    add_model_version(p)
