"""`forecast plot`: PNG charts of a series' forecast, each family's error, or a store's days of
supply (forecast_client.plots; needs the `plot` extra)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

import grpc

from forecast_client import plots
from forecast_client.cli.files import check_output, need_pandas, read_frame
from forecast_client.cli.forecasts import label, optional_frame
from forecast_client.cli.messages import EXIT_OK, UsageError
from forecast_client.cli.parsing import (
    Commands,
    add_levels,
    add_model_version,
    horizon_days,
    positive_int,
)
from forecast_client.client import ForecastClient
from forecast_client.errors import ForecastClientError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The interval levels drawn unless --levels says otherwise.
DEFAULT_LEVELS = [80.0, 95.0]


def cmd_plot(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Draw the chart the flags ask for and write it as a PNG."""
    check_output("--output", args.output, (".png",), "a .png file")
    need_pandas("plot")
    try:
        plots.require_matplotlib()
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    if args.metrics:
        fig = _metrics_figure(client, args)
    elif args.live:
        fig = _live_figure(client, args)
    elif args.supply:
        fig = _supply_figure(client, args)
    else:
        fig = _forecast_figure(client, args, err)
    plots.save_png(fig, args.output)
    width, height = (round(x) for x in fig.get_size_inches() * fig.dpi)
    err.write(f"wrote {args.output} ({width} x {height} px)\n")
    return EXIT_OK


def _need(args: argparse.Namespace, *flags: str) -> None:
    missing = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        what = "--supply" if args.supply else "a forecast plot"
        raise UsageError(f"{what} needs {' and '.join(missing)}")


def _forecast_figure(client: ForecastClient, args: argparse.Namespace, err: TextIO) -> Figure:
    _need(args, "--store", "--family")
    history = None if args.history is None else read_frame("--history", args.history)
    levels = args.levels or DEFAULT_LEVELS
    try:
        forecast = client.forecast(args.retailer, args.days, levels=levels, stores=[args.store],
                                   families=[args.family], model_version=args.model_version)
    except ForecastClientError as exc:
        if (args.levels is not None or exc.code != grpc.StatusCode.FAILED_PRECONDITION
                or "interval" not in exc.details):
            raise
        err.write("note: this model has no prediction intervals (retrain it to get them); "
                  "plotting the forecast alone\n")
        forecast = client.forecast(args.retailer, args.days, stores=[args.store],
                                   families=[args.family], model_version=args.model_version)
    try:
        return plots.forecast_figure(forecast, store_nbr=args.store, family=args.family,
                                     history=history, history_days=args.history_days)
    except ValueError as exc:
        where = f"--history {label(args.history)}: " if args.history else ""
        raise UsageError(f"{where}{exc}") from None


def _metrics_figure(client: ForecastClient, args: argparse.Namespace) -> Figure:
    metrics = client.get_metrics(args.retailer, model_version=args.model_version)
    try:
        return plots.metrics_figure(metrics, metric=args.metric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _live_figure(client: ForecastClient, args: argparse.Namespace) -> Figure:
    live = client.monitoring_frame(args.retailer, by="date")
    try:
        return plots.live_error_figure(live, metric=args.metric)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _supply_figure(client: ForecastClient, args: argparse.Namespace) -> Figure:
    _need(args, "--store", "--inventory")
    inventory = read_frame("--inventory", args.inventory)
    receipts = optional_frame("--receipts", args.receipts)
    try:
        turnover = client.turnover(args.retailer, inventory, days=args.days,
                                   receipts=receipts, lead_time_days=args.lead_time or 0,
                                   model_version=args.model_version)
    except ValueError as exc:
        raise UsageError(f"--inventory {label(args.inventory)}: {exc}") from None
    try:
        return plots.supply_figure(turnover, store_nbr=args.store,
                                   lead_time_days=turnover.attrs.get("lead_time_days"),
                                   horizon_days=turnover.attrs.get("days"))
    except ValueError as exc:
        raise UsageError(f"--store {args.store}: {exc} in --inventory "
                         f"{label(args.inventory)}") from None


def register(commands: Commands) -> None:
    """Add `plot`."""
    p = commands.add(
        "plot", "draw a PNG: a series' forecast, each family's error, or days of supply",
        "With --store and --family: that series' forecast for the next --days days with its "
        "prediction interval bands (--levels; default 80 and 95), after its last --history-days days of sales "
        "read from --history (your sales file, as uploaded; without it only the forecast is "
        "drawn).\n\n"
        "--metrics: each family's test-window error (--metric), the live model against the "
        "baseline.\n\n"
        "--supply with --store and --inventory: days of supply of each family of the store, "
        "as `forecast turnover` computes them.\n\n"
        "--live: the live error over time, served forecasts against the actuals sent with "
        "`forecast actuals`, next to the baseline (--metric).\n\n"
        "Needs matplotlib: pip install 'forecast-client[plot]'.", cmd_plot)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--metrics", action="store_true", help="each family's error vs baseline")
    kind.add_argument("--supply", action="store_true", help="a store's days of supply")
    kind.add_argument("--live", action="store_true", help="the live error over time")
    p.add_argument("--output", required=True, metavar="FILE.png", help="the PNG to write")
    p.add_argument("--store", type=int, metavar="STORE", help="the store number")
    p.add_argument("--family", metavar="FAMILY", help="the product family (quote spaces)")
    p.add_argument("--days", type=horizon_days, default=16, metavar="N",
                   help="days of forecast (default %(default)s)")
    add_levels(p)
    p.add_argument("--history", metavar="FILE",
                   help="sales history to draw before the forecast (the data schema; .csv, "
                        ".parquet, - for stdin)")
    p.add_argument("--history-days", type=positive_int, default=56, metavar="N",
                   help="days of history to draw (default %(default)s)")
    p.add_argument("--metric", default="rmsle", choices=("rmsle", "rmse", "mae", "wape"),
                   help="with --metrics or --live: the error measure (default %(default)s)")
    p.add_argument("--inventory", metavar="FILE",
                   help="with --supply: stock on hand (store_nbr, family, on_hand)")
    p.add_argument("--receipts", metavar="FILE",
                   help="with --supply: scheduled receipts (date, store_nbr, family, quantity)")
    p.add_argument("--lead-time", type=positive_int, metavar="DAYS",
                   help="with --supply: the lead time marked on the chart (default 7)")
    add_model_version(p)
