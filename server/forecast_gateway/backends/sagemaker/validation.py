"""The service model's own constraints, checked on every request before it leaves.

botocore validates required, unknown and mistyped fields, but not the enum values, patterns and
length/range bounds the service model declares; AWS rejects those later with a
ValidationException, after a job may already half exist. `check_request` walks the operation's
input shape and enforces them; `enforce(client)` runs it on every call of a client (a
`provide-client-params` hook), which the backend installs on its own clients and the tests on
theirs.

The patterns are Java regular expressions. The `regex` module reads their Unicode classes
(`\\p{L}`, `\\p{Alnum}`); the one UTF-16 idiom in the models, a surrogate-pair range meaning
"any supplementary character", is rewritten for Python strings.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import regex
from botocore.model import OperationModel, Shape

#: Java's UTF-16 way of saying "every code point above U+FFFF".
_SURROGATE_RANGE = "\\uD800\\uDC00-\\uDBFF\\uDFFF"


class RequestInvalid(ValueError):
    """A request breaks a constraint of the service model. `problems` lists each one."""

    def __init__(self, operation: str, problems: list[str]):
        self.operation = operation
        self.problems = problems
        super().__init__(f"{operation}: " + "; ".join(problems))


@functools.lru_cache(maxsize=1024)
def _pattern(java: str) -> regex.Pattern | None:
    try:
        return regex.compile(java.replace(_SURROGATE_RANGE, "\\U00010000-\\U0010FFFF"))
    except regex.error:
        return None


def check_request(operation: OperationModel, params: Mapping[str, Any]) -> list[str]:
    """Every enum, pattern, length and range problem of `params`, as `path: reason` strings."""
    problems: list[str] = []
    if operation.input_shape is not None:
        _check(operation.input_shape, params, operation.name, problems)
    return problems


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return  # botocore reports the type
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                _check(member, value[name], f"{path}.{name}", problems)
        return
    if kind == "list":
        if isinstance(value, (list, tuple)):
            _bounds(len(value), meta, path, "items", problems)
            for i, item in enumerate(value):
                _check(shape.member, item, f"{path}[{i}]", problems)
        return
    if kind == "map":
        if isinstance(value, Mapping):
            _bounds(len(value), meta, path, "entries", problems)
            for key, item in value.items():
                _check(shape.key, key, f"{path} key {key!r}", problems)
                _check(shape.value, item, f"{path}[{key!r}]", problems)
        return
    if kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {', '.join(shape.enum[:12])}")
        _bounds(len(value), meta, path, "characters", problems)
        java = meta.get("pattern")
        if java:
            compiled = _pattern(java)
            if compiled is None:
                problems.append(f"{path}: the model's pattern {java!r} cannot be checked")
            elif compiled.fullmatch(value) is None:
                problems.append(f"{path}: {value[:80]!r} does not match {java!r}")
        return
    if kind == "blob" and isinstance(value, (bytes, bytearray)):
        _bounds(len(value), meta, path, "bytes", problems)
        return
    if kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{path}: {value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{path}: {value} is above the maximum {meta['max']}")


def _bounds(size: int, meta: Mapping[str, Any], path: str, unit: str, problems: list[str]) -> None:
    if "min" in meta and size < meta["min"]:
        problems.append(f"{path}: {size} {unit}, at least {meta['min']} required")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{path}: {size} {unit}, at most {meta['max']} allowed")


def enforce(client: Any, seen: list[tuple[str, dict]] | None = None) -> Any:
    """Check every request `client` sends (raise `RequestInvalid` before it is sent); append
    `(operation, params)` to `seen` when given (tests count what was checked). Returns `client`."""
    service = client.meta.service_model

    def before(params: dict, model: OperationModel, **_: Any) -> None:  # returns no new params
        problems = check_request(model, params)
        if seen is not None:
            seen.append((model.name, params))
        if problems:
            raise RequestInvalid(model.name, problems)

    # The first event of every call, before botocore's own validation and before a Stubber
    # answers: an invalid request is refused exactly as a real endpoint would see it.
    client.meta.events.register(
        f"provide-client-params.{service.service_id.hyphenize()}", before)
    return client
