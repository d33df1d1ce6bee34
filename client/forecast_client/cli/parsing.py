"""The `forecast` parser's building blocks: one-line usage errors and the flags commands share."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from forecast_client.cli.messages import EXIT_USAGE, PROG

#: A command's function: (client, parsed args, stdout, stderr) -> exit code.
Handler = Callable[..., int]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print `forecast: error: <message> (see <command> --help)` and exit 2."""
        sys.stderr.write(f"{PROG}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


class Commands:
    """Adds the subcommands; each gets --retailer (or FORECAST_RETAILER)."""

    def __init__(self, sub: argparse._SubParsersAction[Parser]):
        self._sub = sub

    def add(self, name: str, help_: str, description: str | None = None,
            handler: Handler | None = None) -> Parser:
        """A subcommand `name` that runs `handler` (set later with set_defaults if None)."""
        p = self._sub.add_parser(name, help=help_, description=description or help_,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--retailer", default=os.environ.get("FORECAST_RETAILER"),
                       required=not os.environ.get("FORECAST_RETAILER"),
                       help="retailer (tenant) id (env FORECAST_RETAILER)")
        if handler is not None:
            p.set_defaults(func=handler)
        return p

    def add_local(self, name: str, help_: str, handler: Handler) -> Parser:
        """A subcommand that needs no gateway and no retailer (it runs with no client)."""
        p = self._sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=handler, local=True)
        return p


def add_quiet(p: argparse.ArgumentParser) -> None:
    """-q/--quiet: no progress display."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def add_json(p: argparse.ArgumentParser, what: str = "print JSON") -> None:
    """--json: machine-readable output."""
    p.add_argument("--json", action="store_true", help=what)


def add_model_version(p: argparse.ArgumentParser) -> None:
    """--model-version: a version instead of the live model."""
    p.add_argument("--model-version", default="", help="model version (default: the live one)")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


#: The longest forecast the API answers (forecasting.forecast.MAX_HORIZON_DAYS).
MAX_DAYS = 366


def horizon_days(text: str) -> int:
    """argparse type: a number of days to forecast, 1 to MAX_DAYS (checked here, so the error
    names the flag rather than the API's field)."""
    value = positive_int(text)
    if value > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_DAYS} days")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return value


def level(text: str) -> float:
    """argparse type: an interval level in percent, above 0 and below 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 80 or 95)") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage above 0 and below 100 "
                                         "(e.g. 80 or 95)")
    return value


def add_levels(p: argparse.ArgumentParser, default: list[float] | None = None) -> None:
    """--levels: prediction interval levels in percent."""
    p.add_argument("--levels", nargs="+", type=level, default=default, metavar="PERCENT",
                   help="prediction interval levels, e.g. --levels 80 95: adds lo-80/hi-80 ... "
                        "columns" + (f" (default {' '.join(f'{x:g}' for x in default)})"
                                     if default else ""))

