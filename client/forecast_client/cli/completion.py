"""`forecast completion bash|zsh`: the shell's completion script, generated from the CLI's own
parser by shtab (every command, flag and choice, so it never goes stale)."""

from __future__ import annotations

import argparse
from typing import TextIO

from forecast_client.cli.messages import EXIT_OK
from forecast_client.cli.parsing import Commands

SHELLS = ("bash", "zsh")


def cmd_completion(client: object, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the completion script for `args.shell`."""
    import shtab

    from forecast_client.cli.app import build_parser

    out.write(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `completion`."""
    p = commands.add_local(
        "completion", "print the shell completion script: "
        "source <(forecast completion bash), or for zsh put "
        "`forecast completion zsh > ~/.zfunc/_forecast` on your fpath", cmd_completion)
    p.add_argument("shell", choices=SHELLS, help="the shell")
