"""The PYTHONPATH of a child process that runs this gateway's code: the local backend's
training children, and the gateway processes that tests and benchmarks start."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# The packages the child imports; their directories go on its PYTHONPATH.
PACKAGES = ("forecast_gateway", "forecasting", "forecast_client")


def child_pythonpath(inherited: str | None = None) -> str:
    """PYTHONPATH for a child process that must import the same gateway, library and SDK code as
    this one, even when they are not installed (scripts that extend sys.path themselves): the
    directories this process imports them from, then `inherited`."""
    roots: list[str] = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            root = str(Path(location).resolve().parent)
            if root not in roots:
                roots.append(root)
    return os.pathsep.join([*roots, *filter(None, [inherited])])
