"""The one reader of gateway settings, from flags and FORECAST_GATEWAY_* variables: the gateway
(`load_config`), `forecast-gateway keys` (`add_arguments` + `read_values` for the settings it
shares) and `forecast-pipeline` (`from_environ`) all go through it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path

from forecast_gateway.config.declare import ENV_PREFIX, declared, flag, problem, variable
from forecast_gateway.config.gateway import SECTIONS, GatewayConfig

PROG = "forecast-gateway"


def _default(f: Field) -> object:
    return None if f.default is MISSING else f.default


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                  names: Iterable[str] | None = None) -> None:
    """Add the flags of the settings `names` (all when None) to `parser`, grouped by section."""
    wanted = None if names is None else set(names)
    top = parser
    for section in SECTIONS:
        chosen = [f for f in declared(section) if wanted is None or f.name in wanted]
        if not chosen:
            continue
        group = top.add_argument_group(section.TITLE) if wanted is None else top
        for f in chosen:
            default = _default(f)
            shown = "empty" if default == "" else "none" if default is None else default
            help_text = (f"{f.metadata['help']} (env {variable(f.name)}; default {shown})"
                         .replace("%", "%%"))
            if isinstance(default, bool):
                group.add_argument(flag(f.name), dest=f.name, default=None, help=help_text,
                                   action=argparse.BooleanOptionalAction)
            else:
                group.add_argument(flag(f.name), dest=f.name, default=None, help=help_text,
                                   metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    """The `forecast-gateway` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, usage="%(prog)s [--FLAG VALUE ...] | forecast-gateway keys ...",
        description="Serve the forecastapi.v1 gRPC API (training, models, predictions). "
        f"Every flag can also be set with {ENV_PREFIX}<NAME> (e.g. {ENV_PREFIX}PORT=50051).",
        epilog="API keys: `forecast-gateway keys --help` (create-retailer, issue, list, revoke; "
        "offline, on the same --data-dir or --database-url).",
    )
    add_arguments(parser)
    return parser


def _parse(f: Field, raw: object, source: str) -> object:
    """`raw` (a flag's or variable's text) as `f`'s type; ValueError naming `source`."""
    default = _default(f)
    if isinstance(raw, bool):
        return raw
    text = str(raw)
    try:
        if isinstance(default, bool):
            return _parse_bool(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = ("true or false" if isinstance(default, bool) else "an integer"
                if isinstance(default, int) else "a number")
        raise ValueError(f"{source}: expected {kind}, got {text[:100]!r}") from None
    if f.type in ("Path", "Path | None"):  # annotations are strings here
        return Path(text)
    return text


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def read_values(args: argparse.Namespace, environ: Mapping[str, str],
                names: Iterable[str] | None = None) -> dict[str, object]:
    """The settings set by a flag in `args` or else a variable in `environ` (not the defaults),
    typed and each checked; ValueError naming the first that is wrong."""
    wanted = None if names is None else set(names)
    values: dict[str, object] = {}
    for f in fields(GatewayConfig):
        if wanted is not None and f.name not in wanted:
            continue
        raw, source = getattr(args, f.name, None), flag(f.name)
        if raw is None and variable(f.name) in environ:
            raw, source = environ[variable(f.name)], variable(f.name)
        if raw is None:
            continue
        value = _parse(f, raw, source)
        found = problem(f, value)
        if found:
            raise ValueError(found)
        values[f.name] = value
    return values


def from_environ(name: str, environ: Mapping[str, str] | None = None) -> object | None:
    """Setting `name` from its FORECAST_GATEWAY_* variable, typed and checked, or None when the
    variable is unset (for tools that share the gateway's settings, like forecast-pipeline)."""
    return read_values(argparse.Namespace(), os.environ if environ is None else environ,
                       [name]).get(name)


def load_config(argv: list[str] | None = None,
                environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Flags, then FORECAST_GATEWAY_* variables, then defaults. Exits with status 2 and one line
    on stderr naming the bad setting."""
    args = build_parser().parse_args(argv)
    try:
        return GatewayConfig(**read_values(args, os.environ if environ is None else environ))
    except ValueError as exc:
        refuse(str(exc))
        raise  # unreachable


def refuse(message: str, prog: str = PROG) -> None:
    """A bad setting: one line on stderr and exit code 2 (not the whole usage, which buries the
    reason under 60 lines of flags)."""
    sys.stderr.write(f"{prog}: error: {message} (--help lists every flag)\n")
    raise SystemExit(2)
