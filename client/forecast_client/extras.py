"""The optional dependencies, imported where a call needs them, with the install hint when one
is missing (the SDK itself needs only grpcio and protobuf: `pip install forecast-client`)."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The extra that brings each optional module (client/pyproject.toml).
EXTRAS = {"pandas": "pandas", "numpy": "pandas", "pyarrow": "parquet", "matplotlib": "plot"}


class MissingExtraError(ImportError):
    """An SDK call needs an optional dependency that is not installed."""


def require(module: str, what: str = "this call") -> ModuleType:
    """`module`, imported; MissingExtraError naming the pip extra to install otherwise."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise MissingExtraError(
            f"{what} needs {module}, which is not installed: pip install "
            f"'forecast-client[{extra}]'") from None
