"""`forecast-gateway`: serve the forecastapi.v1 API until SIGTERM or SIGINT, then drain and exit.

    forecast-gateway --host 127.0.0.1 --port 50051 --data-dir ./var --backend local
    forecast-gateway keys create-retailer acme --data-dir ./var   # offline admin (auth.command)

Every flag also reads FORECAST_GATEWAY_<NAME> (see `forecast-gateway --help`).
Exit codes: 0 after a clean stop, 1 when the gateway cannot start, 2 for bad flags.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from forecast_gateway.config import GatewayConfig, load_config
from forecast_gateway.logs import configure_logging
from forecast_gateway.store.datadir_lock import DataDirInUse

log = logging.getLogger("forecast_gateway.main")


async def serve(config: GatewayConfig) -> None:
    """Run the gateway until SIGTERM/SIGINT, then stop it gracefully."""
    from forecast_gateway.server import GatewayServer

    server = GatewayServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except BaseException:
        await loop.run_in_executor(None, server.service.close)
        raise
    await stop.wait()
    log.info("signal received; draining in-flight calls")
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `forecast-gateway` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["keys"]:
        from forecast_gateway.auth import command

        return command.main(args[1:])
    config = load_config(args)
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0
    except DataDirInUse as exc:  # a second gateway on the same --data-dir: one line, exit 1
        print(f"forecast-gateway: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.error("gateway cannot start: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
