"""The `forecast` console script: the parser, the client, and one line on stderr for every
failure.

Exit codes: 0 success, 1 the gateway answered with an error (or a job failed), 2 usage error
(bad flags, unreadable local file, missing optional dependency), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from forecast_client import __version__
from forecast_client.cli import (
    completion,
    datasets,
    exports,
    forecasts,
    jobs,
    models,
    monitor,
    plot,
)
from forecast_client.cli.messages import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    PROG,
    UsageError,
    describe,
    in_cli_words,
)
from forecast_client.cli.parsing import Commands, Parser, positive_float
from forecast_client.client import ForecastClient
from forecast_client.config import API_KEY_ENV, ClientConfig, Timeouts, TlsConfig, target_from_env
from forecast_client.errors import ForecastClientError


def build_parser() -> Parser:
    """The `forecast` argument parser."""
    parser = Parser(
        prog=PROG,
        description="Train per-retailer forecasting models and get forecasts from a forecast "
                    "gateway over gRPC.",
        epilog="Exit codes: 0 ok, 1 the gateway reported an error (or the job failed), "
               "2 usage error. Environment: FORECAST_TARGET (gateway address), FORECAST_RETAILER.",
    )
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {__version__} (forecast-client)")
    parser.add_argument("--target", default=target_from_env(),
                        metavar="HOST:PORT",
                        help="gateway address, or a gRPC name of a fleet such as "
                             "dns:///gateway:50051 (calls go round-robin over its addresses; "
                             "env FORECAST_TARGET; default %(default)s)")
    parser.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                        help="deadline of each small call (default %(default)s)")
    parser.add_argument("--api-key", metavar="KEY",
                        help=f"the API key (default: env {API_KEY_ENV}, which keeps it out of "
                             "the process list)")
    parser.add_argument("--tls-ca", metavar="PEM", help="connect with TLS, trusting this CA")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate (mTLS)")
    parser.add_argument("--tls-key", metavar="PEM", help="client private key (mTLS)")
    parser.add_argument("--tls-server-name", metavar="NAME",
                        help="expect this name in the gateway's certificate (testing)")
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    for group in (datasets, jobs, forecasts, exports, models, monitor, plot, completion):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "local", False):   # needs no gateway
        return int(args.func(None, args, out, err))
    try:
        tls_files = (args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
        tls = TlsConfig.from_files(*tls_files) if any(tls_files) else None
        key = {"api_key": args.api_key} if args.api_key else {}
        config = ClientConfig(target=args.target, timeouts=Timeouts(unary_s=args.timeout),
                              tls=tls, **key)
    except ValueError as exc:
        parser.error(in_cli_words(str(exc)))
    try:
        with ForecastClient(config) as client:
            return int(args.func(client, args, out, err))
    except ForecastClientError as exc:
        err.write(f"{PROG}: error: {describe(exc, args.target)}\n")
        return EXIT_SERVER
    except UsageError as exc:
        err.write(f"{PROG}: error: {in_cli_words(str(exc))}\n")  # one line, always
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        detail = " ".join(str(exc).split()) or repr(exc)
        err.write(f"{PROG}: error: something went wrong on this side ({detail}); please report "
                  "it with the command you ran\n")
        return EXIT_SERVER


if __name__ == "__main__":
    sys.exit(main())
