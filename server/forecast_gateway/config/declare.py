"""How a gateway setting is declared: once, as a dataclass field whose metadata holds its help
text and its check. The flag (`--name-with-dashes`), the variable (`FORECAST_GATEWAY_NAME`),
the type, the default, `--help` and the start-up check all come from that one declaration
(`reader.py` reads them; `gateway.py` runs the checks)."""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Callable
from dataclasses import Field, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "FORECAST_GATEWAY_"

#: A check takes the value and answers what is wrong with it, or None: the words that follow
#: the setting's name ("must be positive", or ": no such file: x").
Check = Callable[[Any], "str | None"]


def setting(default: Any, help: str, *, check: Check | None = None) -> Any:
    """A setting's declaration: its default, the sentence `--help` prints, and its check."""
    return field(default=default, metadata={"help": help, "check": check})


def flag(name: str) -> str:
    """The flag of setting `name`."""
    return "--" + name.replace("_", "-")


def variable(name: str) -> str:
    """The environment variable of setting `name`."""
    return ENV_PREFIX + name.upper()


def declared(cls: type) -> list[Field]:
    """The settings `cls` declares itself (not those of the sections it is composed of)."""
    own = inspect.get_annotations(cls)
    return [f for f in fields(cls) if f.name in own]


def problem(f: Field, value: Any) -> str | None:
    """`f`'s check of `value`: the error message naming the setting, or None."""
    check = f.metadata.get("check")
    found = check(value) if check else None
    if not found:
        return None
    return f"{f.name}{found}" if found.startswith(":") else f"{f.name} {found}"


# -- checks ------------------------------------------------------------------------------------

def positive(value: float) -> str | None:
    return None if value > 0 else "must be positive"


def not_negative(value: float) -> str | None:
    return None if value >= 0 else "cannot be negative"


def port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be 0..65535, got {value}"


def port_or_off(value: int) -> str | None:
    return None if -1 <= value <= 65535 else f"must be -1 (off) or 0..65535, got {value}"


def one_of(*choices: str) -> Check:
    """The value is one of `choices`."""
    words = ", ".join(choices[:-1]) + f" or {choices[-1]}"

    def check(value: str) -> str | None:
        return None if value in choices else f"must be {words}, got {value!r}"
    return check


def in_range(low: int, high: int, unit: str = "") -> Check:
    """low <= value <= high."""
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"must be {low}..{high}{unit}, got {value}"
    return check


def s3_uri(value: str) -> str | None:
    """Empty, or `s3://bucket[/prefix]` (S3Layout's own reason otherwise)."""
    if not value:
        return None
    from forecast_gateway.backends.sagemaker.layout import S3Layout  # no import cycle at load
    try:
        S3Layout.from_uri(value, "")
    except ValueError as exc:
        return str(exc).lstrip(" ")
    return None


def database_url(value: str) -> str | None:
    if not value or value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://",
                                      "sqlite:///")):
        return None
    return "must be postgresql://... or sqlite:///PATH"


def existing_file(value: Path | None) -> str | None:
    return None if value is None or Path(value).is_file() else f": no such file: {value}"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
