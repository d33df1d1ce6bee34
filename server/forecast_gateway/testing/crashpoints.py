"""Named points where a test can make the gateway die, as `kill -9` would, at an exact moment.

TEST-ONLY. Set `FORECAST_GATEWAY_TEST_CRASH_AT=<point>` in the gateway's environment and the
process SIGKILLs itself when it reaches that point (no cleanup, no drain: the crash tests then
restart the gateway on the same data dir and check what it recovers). Unset in production, where
`crash_point` is one dictionary lookup. The points:

- `publish.staged`: the trained artifact is in `models/.staging/`, nothing installed yet;
- `publish.uploaded`: with `--artifact-store`, every file is in S3, nothing renamed into the
  cache and nothing recorded (the objects are left unreferenced);
- `publish.installed`: the artifact is renamed into `models/<version>` (or its cache entry),
  but the registry does not record the version yet (the window where an orphan directory is
  left behind).
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "FORECAST_GATEWAY_TEST_CRASH_AT"
POINTS = ("publish.staged", "publish.uploaded", "publish.installed")

log = logging.getLogger("forecast_gateway.testing.crashpoints")


def crash_point(name: str) -> None:
    """SIGKILL this process when the test hook names `name`."""
    if os.environ.get(ENV) == name:
        log.warning("test crash point reached; SIGKILL", extra={"fields": {"point": name}})
        os.kill(os.getpid(), signal.SIGKILL)
