"""`forecast-gateway keys ...`: the admin operations, offline, on a gateway's data dir.

    forecast-gateway keys create-retailer acme            # the retailer and its first key
    forecast-gateway keys create-retailer acme --exist-ok --print   # idempotent, for scripts
    forecast-gateway keys issue acme --name ci            # another key for acme
    forecast-gateway keys issue --admin --name ops        # an admin key (for AdminService)
    forecast-gateway keys list [--retailer acme] [--all] [--json]
    forecast-gateway keys revoke 0123456789abcdef

It works whether or not a gateway is serving the data dir (SQLite in WAL mode takes both). A key
is printed once; `--print` prints only the key, for scripts. A gateway that is running notices
an offline revocation within its key cache time (`--auth-cache-s`, 10 s by default).
Exit codes: 0 ok, 1 the operation failed (one line on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from forecast_gateway.auth.admin import KeyAdmin
from forecast_gateway.auth.keys import ApiKey, IssuedKey, KeyStore
from forecast_gateway.auth.principal import Role
from forecast_gateway.config import GatewayConfig, add_arguments, read_values
from forecast_gateway.store.database import Database, default_url, redacted
from forecast_gateway.store.registry import Registry
from forecasting.errors import ForecastingError

PROG = "forecast-gateway keys"
#: The gateway's settings this command reads too, so both find the same store.
SHARED_SETTINGS = ("data_dir", "database_url")


def build_parser() -> argparse.ArgumentParser:
    """The `forecast-gateway keys` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Create retailers and issue, list and revoke API keys, offline, "
        "in a gateway's data dir.")
    # The gateway's own declarations of the two settings it shares (flag, variable, check).
    add_arguments(parser, SHARED_SETTINGS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("create-retailer", help="create a retailer and issue its first key")
    p.add_argument("retailer", help="the new retailer id")
    p.add_argument("--exist-ok", action="store_true",
                   help="when the retailer exists, issue it another key instead of failing "
                        "(for bootstrap scripts that run more than once)")
    p.add_argument("--name", default="", help="a label for the key (who holds it)")
    p.add_argument("--print", action="store_true", dest="print_only",
                   help="print only the key (for scripts)")

    p = sub.add_parser("issue", help="issue another key for a retailer, or an admin key")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("retailer", nargs="?", help="the retailer the key acts for")
    who.add_argument("--admin", action="store_true", help="an admin key (AdminService only)")
    p.add_argument("--name", default="", help="a label for the key (who holds it)")
    p.add_argument("--print", action="store_true", dest="print_only",
                   help="print only the key (for scripts)")

    p = sub.add_parser("list", help="list keys (never their secrets)")
    p.add_argument("--retailer", default="", help="only this retailer's keys")
    p.add_argument("--all", action="store_true", help="revoked keys too")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("revoke", help="revoke a key by its key id")
    p.add_argument("key_id", help="the key id (16 hex characters, as `list` shows)")
    return parser


def _show_issued(issued: IssuedKey, print_only: bool, out: TextIO) -> None:
    if print_only:
        out.write(issued.key + "\n")
        return
    whom = "admin" if issued.record.role is Role.ADMIN else f"retailer {issued.record.retailer!r}"
    out.write(f"API key for {whom} (key id {issued.record.key_id}); it is shown only now, keep "
              f"it secret:\n{issued.key}\n\nUse it with the SDK and the CLI:\n"
              f"  export FORECAST_API_KEY={issued.key}\n")


def _key_dict(key: ApiKey) -> dict[str, object]:
    return {"key_id": key.key_id, "role": key.role.value, "retailer": key.retailer or "",
            "name": key.name, "created_at": key.created_at, "revoked_at": key.revoked_at}


def run(args: argparse.Namespace, admin: KeyAdmin, out: TextIO) -> None:
    """Carry out one parsed command."""
    if args.command == "create-retailer":
        if args.exist_ok and admin.registry.retailer_exists(args.retailer):
            issued = admin.issue_key(Role.RETAILER, args.retailer, args.name)
        else:
            issued = admin.create_retailer(args.retailer, args.name)
        _show_issued(issued, args.print_only, out)
    elif args.command == "issue":
        role = Role.ADMIN if args.admin else Role.RETAILER
        _show_issued(admin.issue_key(role, args.retailer or "", args.name), args.print_only, out)
    elif args.command == "list":
        keys = admin.list_keys(args.retailer, include_revoked=args.all)
        for key in keys:
            if args.json:
                out.write(json.dumps(_key_dict(key)) + "\n")
            else:
                state = "revoked" if key.revoked else "valid"
                out.write(f"{key.key_id}  {key.role.value:<8}  {key.retailer or '-':<20}  "
                          f"{state:<7}  {key.name}\n")
    elif args.command == "revoke":
        key = admin.revoke_key(args.key_id)
        out.write(f"revoked key {key.key_id} ({key.role.value} "
                  f"{key.retailer or ''})\n".replace(" )", ")"))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Entry point of `forecast-gateway keys`; returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        shared = read_values(args, os.environ, SHARED_SETTINGS)
    except ValueError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return 2
    data_dir = Path(shared.get("data_dir", GatewayConfig.data_dir)).resolve()
    database_url = str(shared.get("database_url", ""))
    where = redacted(database_url) if database_url else str(data_dir)
    try:
        database = Database.open(database_url or default_url(data_dir))
        registry = Registry(database, data_dir)
        keys = KeyStore(database)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        err.write(f"{PROG}: error: cannot open the registry in {where}: "
                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}\n")
        return 1
    try:
        run(args, KeyAdmin(registry, keys), out)
    except ForecastingError as exc:   # the gateway's errors and a bad argument alike
        err.write(f"{PROG}: error: {exc}\n")
        return 1
    finally:
        database.close()
    return 0
