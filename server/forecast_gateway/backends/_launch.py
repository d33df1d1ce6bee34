"""Launch a training command niced and tied to the gateway's life, without `preexec_fn`.

    python -m forecast_gateway.backends._launch NICE PARENT_PID -- COMMAND...

Runs in the fresh child (so nothing unsafe happens between fork and exec in the multi-threaded
gateway): adds NICE to the niceness, asks Linux to send SIGTERM when the gateway dies
(PR_SET_PDEATHSIG, kept across exec), then replaces itself with COMMAND.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _launch NICE PARENT_PID -- COMMAND...\n")
        return 2
    nice, parent, command = int(argv[0]), int(argv[1]), argv[3:]
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the gateway died before prctl took effect
        return 143
    os.execvp(command[0], command)
    return 127  # unreachable


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
