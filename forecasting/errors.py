"""The one error taxonomy. The gateway, the CLI and the HTTP server each map it in one place.

Three kinds, as in AWS's algorithm containers:
- ``UserError``: the caller can fix it (bad data, bad hyperparameter, bad request).
- ``AlgorithmError``: our bug.
- ``PlatformError``: the environment (disk, memory, missing files the platform should provide).
``ArtifactError`` is a user-facing problem with a stored model (foreign, old or corrupt).
"""

from __future__ import annotations

from collections.abc import Sequence


class ForecastingError(Exception):
    """Base of every error this library raises on purpose."""

    kind = "algorithm"


class UserError(ForecastingError):
    """Something the caller can fix."""

    kind = "user"


class DataValidationError(UserError):
    """Input data breaks the store-sales schema.

    ``column`` and ``rule`` say what is wrong; ``rows`` holds a few example row numbers
    (1-based data rows, the header not counted).
    """

    def __init__(self, column: str | None, rule: str, rows: Sequence[int] = (), count: int = 0):
        self.column = column
        self.rule = rule
        self.rows = [int(r) for r in rows]
        self.count = int(count or len(self.rows))
        where = f"column '{column}': " if column else ""
        msg = f"{where}{rule}"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            msg += f" (rows {shown}" + (f"; {self.count} rows in all)" if self.count > len(self.rows) else ")")
        super().__init__(msg)


class HyperparameterError(UserError):
    """A hyperparameter is unknown, of the wrong type or out of range."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(f"hyperparameter '{name}': {message}")


class ForecastRequestError(UserError):
    """Future rows that cannot be forecast (unknown series, dates inside the history, ...)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class ArtifactError(UserError):
    """A model directory that is not ours, from an unsupported version, or damaged."""


class AlgorithmError(ForecastingError):
    """A bug in this library: the input was valid and we still failed."""

    kind = "algorithm"


class PlatformError(ForecastingError):
    """The environment failed us: missing platform files, disk, memory."""

    kind = "platform"
