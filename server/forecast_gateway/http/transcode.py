"""HTTP request parts -> the RPC's request message, and response messages -> JSON, following
protobuf's JSON mapping (`json_format`) and the `google.api.http` rule of the route.

What a request becomes: the body (the whole message for `body: "*"`, or the one field the rule
names), then the query parameters, then the path variables; a field given twice with different
values is refused. One addition to the JSON mapping, for people writing rows by hand: a columnar
message (every field a repeated scalar, like RowBatch) may be given as a list of row objects,
`[{"date": "2017-08-16", "store_nbr": 1, "family": "BREAD/BAKERY", "onpromotion": 0}, ...]`; a
row's `date` (YYYY-MM-DD) fills the `day` column (days since 1970-01-01).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from forecast_gateway.http.routes import Route

EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_INT_TYPES = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64,
              FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64}


class BadRequest(ValueError):
    """The HTTP request cannot become the RPC's request message; the text names where."""


# -- field lookup ---------------------------------------------------------------------------------

def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by proto name or JSON name."""
    found = descriptor.fields_by_name.get(name)
    if found is not None:
        return found
    for field in descriptor.fields:
        if field.json_name == name:
            return field
    return None


def _leaf_paths(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> Iterable[str]:
    """Dotted proto-name paths of every scalar (or repeated scalar) field reachable from a
    message, for resolving query parameters; stops at recursion."""
    for field in descriptor.fields:
        path = f"{prefix}{field.name}"
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if depth < 4 and not _is_columnar(field.message_type):
                yield from _leaf_paths(field.message_type, path + ".", depth + 1)
        else:
            yield path


def _resolve(descriptor: Descriptor, path: str) -> list[FieldDescriptor]:
    """The fields along a dotted path (proto or JSON names); BadRequest when one is unknown."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for name in path.split("."):
        field = _field(current, name) if current is not None else None
        if field is None:
            raise BadRequest(f"{path}: no such field in {descriptor.full_name}")
        fields.append(field)
        current = field.message_type
    return fields


def resolve_query_name(descriptor: Descriptor, name: str) -> str:
    """A query parameter's field path: the dotted path itself, or, when it is unambiguous, the
    last part alone (`filename` for `header.filename`)."""
    if "." in name or _field(descriptor, name) is not None:
        return ".".join(f.name for f in _resolve(descriptor, name))
    matches = [p for p in _leaf_paths(descriptor) if p.rsplit(".", 1)[-1] == name
               or _resolve(descriptor, p)[-1].json_name == name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BadRequest(f"query parameter {name!r}: no such field in {descriptor.full_name}")
    raise BadRequest(f"query parameter {name!r} is ambiguous: name one of {', '.join(matches)}")


def _text_value(field: FieldDescriptor, text: str, where: str) -> Any:
    """A path or query value (always text) as the JSON value json_format expects."""
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BadRequest(f"{where}: expected true or false, got {text!r}")
    return text  # json_format accepts numbers, enums and bytes (base64) as strings


def _set_path(data: dict[str, Any], fields: list[FieldDescriptor], value: Any, where: str) -> None:
    target = data
    for field in fields[:-1]:
        child = target.setdefault(field.name, {})
        if not isinstance(child, dict):
            raise BadRequest(f"{where}: {field.name} must be an object")
        target = child
    last = fields[-1]
    for key in (last.name, last.json_name):
        if key in target and target[key] != value:
            raise BadRequest(f"{where}: {'.'.join(f.name for f in fields)} is {value!r} here but "
                             f"{target[key]!r} in the body")
        target.pop(key, None)
    target[last.name] = value


# -- columnar messages (RowBatch and friends) -----------------------------------------------------

def _is_columnar(descriptor: Descriptor) -> bool:
    return bool(descriptor.fields) and all(
        f.is_repeated and f.message_type is None for f in descriptor.fields)


def rows_to_columns(descriptor: Descriptor, rows: list[Any], where: str) -> dict[str, list[Any]]:
    """A list of row objects -> the columns of a columnar message (proto field names). Every
    row must give the same keys; `date` fills `day`."""
    names: dict[str, str] = {}  # key as written -> column (proto field name)
    for field in descriptor.fields:
        names[field.name] = names[field.json_name] = field.name
    has_day = "day" in descriptor.fields_by_name
    if not rows:
        return {}
    first = rows[0]
    if not isinstance(first, Mapping):
        raise BadRequest(f"{where}[0]: expected an object, got {type(first).__name__}")
    keys = list(first)
    columns: dict[str, list[Any]] = {}
    plan: list[tuple[str, str, bool]] = []  # (key, column, is_date)
    for key in keys:
        if key == "date" and has_day:
            plan.append((key, "day", True))
        elif key in names:
            plan.append((key, names[key], False))
        else:
            known = ", ".join(sorted({*descriptor.fields_by_name, *(["date"] if has_day else [])}))
            raise BadRequest(f"{where}[0]: unknown key {key!r} (known: {known})")
        if plan[-1][1] in columns:
            raise BadRequest(f"{where}[0]: {key!r} names the column {plan[-1][1]!r} twice")
        columns[plan[-1][1]] = []
    width = len(keys)
    for i, row in enumerate(rows):  # the same keys everywhere (rows come from json.loads)
        if type(row) is not dict or len(row) != width:
            _row_mismatch(row, keys, f"{where}[{i}]")
    for key, column, is_date in plan:  # one pass per column
        try:
            values = [row[key] for row in rows]
        except KeyError:
            bad = next(i for i, row in enumerate(rows) if key not in row)
            _row_mismatch(rows[bad], keys, f"{where}[{bad}]")
        if is_date:
            values = _days(values, f"{where}[{{}}].date")
        columns[column] = values
    return columns


def _days(values: list[Any], where: str) -> list[int]:
    """YYYY-MM-DD texts -> days since 1970-01-01, parsing each distinct date once. `where` has
    a `{}` for the row number of an error."""
    cache: dict[str, int] = {}
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadRequest(f"{where.format(i)}: expected a date as YYYY-MM-DD, got {value!r}")
        if value not in cache:
            try:
                cache[value] = dt.date.fromisoformat(value).toordinal() - EPOCH_ORDINAL
            except ValueError:
                raise BadRequest(f"{where.format(i)}: {value!r} is not a date (YYYY-MM-DD)") \
                    from None
    return [cache[v] for v in values]


def _row_mismatch(row: Any, keys: list[str], where: str) -> None:
    if not isinstance(row, Mapping):
        raise BadRequest(f"{where}: expected an object, got {type(row).__name__}")
    missing = [k for k in keys if k not in row]
    extra = [k for k in row if k not in keys]
    raise BadRequest(f"{where}: every row must have the keys of the first row "
                     f"({', '.join(keys)}); " + "; ".join(
                         filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                       f"extra {', '.join(map(str, extra))}" if extra else ""])))


def _fill_columns(message: Message, columns: Mapping[str, Any], where: str) -> None:
    """Set a columnar message's fields from {name: list} (a fast path: one C-level extend per
    column instead of json_format's per-value conversion)."""
    descriptor = message.DESCRIPTOR
    for key, values in columns.items():
        field = _field(descriptor, key)
        if field is None:
            raise BadRequest(f"{where}.{key}: no such field in {descriptor.full_name}")
        if not isinstance(values, list):
            raise BadRequest(f"{where}.{field.name}: expected a list, got {type(values).__name__}")
        try:
            getattr(message, field.name).extend(values)
        except (TypeError, ValueError) as exc:
            bad = next((i for i, v in enumerate(values) if not _fits(field, v)), None)
            at = f"[{bad}]: {values[bad]!r} is not " if bad is not None else ": "
            raise BadRequest(f"{where}.{field.name}{at}{_type_name(field)}"
                             + ("" if bad is not None else f" ({exc})")) from None


def _fits(field: FieldDescriptor, value: Any) -> bool:
    if field.cpp_type in _INT_TYPES:
        return isinstance(value, int) and not isinstance(value, bool)
    if field.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return isinstance(value, str)
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return isinstance(value, bool)
    return True


def _type_name(field: FieldDescriptor) -> str:
    if field.cpp_type in _INT_TYPES:
        return "an integer"
    if field.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return "a number"
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return "a string"
    return f"a {field.type}"


def _take_columnar(descriptor: Descriptor, data: dict[str, Any], where: str,
                   depth: int = 0) -> list[tuple[list[str], dict[str, list[Any]], str]]:
    """Remove every columnar sub-message from `data` (a JSON object for `descriptor`), returning
    (field path, columns, where) for each; lists of row objects become columns here."""
    found: list[tuple[list[str], dict[str, list[Any]], str]] = []
    for key in list(data):
        field = _field(descriptor, key)
        if field is None or field.message_type is None or field.is_repeated:
            continue
        here = f"{where}.{field.name}" if where else field.name
        value = data[key]
        if _is_columnar(field.message_type):
            if isinstance(value, list):
                columns = rows_to_columns(field.message_type, value, here)
            elif isinstance(value, Mapping):
                columns = dict(value)
            elif value is None:
                columns = {}
            else:
                raise BadRequest(f"{here}: expected a list of row objects or an object of columns")
            del data[key]
            found.append(([field.name], columns, here))
        elif isinstance(value, dict) and depth < 4:
            for path, columns, at in _take_columnar(field.message_type, value, here, depth + 1):
                found.append(([field.name, *path], columns, at))
    return found


def parse_message(cls: type[Message], data: Any, where: str = "") -> Message:
    """A JSON object -> a message of `cls` (json_format, plus row-object lists for columnar
    fields). BadRequest names the field on any error; unknown fields are errors."""
    if not isinstance(data, dict):
        raise BadRequest(f"{where or 'the body'}: expected a JSON object, got "
                         f"{type(data).__name__}")
    columnar = _take_columnar(cls.DESCRIPTOR, data, where)
    message = cls()
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        raise BadRequest(f"{where + ': ' if where else ''}{exc}") from None
    except RecursionError:
        raise BadRequest(f"{where or 'the body'}: nests objects too deeply") from None
    except (OverflowError, TypeError, ValueError) as exc:   # e.g. a huge number for an int32
        raise BadRequest(f"{where + ': ' if where else ''}{exc}") from None
    for path, columns, at in columnar:
        target = message
        for name in path:
            target = getattr(target, name)
        _fill_columns(target, columns, at)
    return message


def request_data(route: Route, path_vars: Mapping[str, str], query: Iterable[tuple[str, str]],
                 body: Any) -> dict[str, Any]:
    """The request as one JSON object: body, then query parameters, then path variables."""
    descriptor = route.method.input_type
    if route.body == "*":
        if body is None:
            data: dict[str, Any] = {}
        elif isinstance(body, dict):
            data = body
        else:
            raise BadRequest(f"the body: expected a JSON object, got {type(body).__name__}")
    else:
        data = {}
        if route.body and body is not None:
            data[route.body] = body
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(resolve_query_name(descriptor, name), []).append(value)
    for path, values in grouped.items():
        fields = _resolve(descriptor, path)
        leaf = fields[-1]
        where = f"query parameter {path!r}"
        if leaf.is_repeated:
            value: Any = [_text_value(leaf, v, where) for v in values]
        elif len(values) > 1:
            raise BadRequest(f"{where}: given {len(values)} times; it takes one value")
        else:
            value = _text_value(leaf, values[0], where)
        _set_path(data, fields, value, where)
    for path, text in path_vars.items():
        fields = _resolve(descriptor, path)
        _set_path(data, fields, _text_value(fields[-1], text, f"path {{{path}}}"),
                  f"path {{{path}}}")
    return data


def build_request(route: Route, path_vars: Mapping[str, str], query: Iterable[tuple[str, str]],
                  body: Any) -> Message:
    """The route's request message from the path variables, query parameters and parsed body."""
    return parse_message(route.request_class, request_data(route, path_vars, query, body))


def parse_json(raw: bytes, where: str = "the body") -> Any:
    """JSON text -> a value; BadRequest with the position when it is not JSON, and when it is
    JSON no request can hold: NaN, Infinity or a number out of a double's range (1e400), an
    integer of more than 4,300 digits, or nesting deeper than Python's recursion allows."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"{where} nests arrays or objects too deeply") from None
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc}") from None
    except ValueError as exc:   # int('9' * 5000): Python's limit on integer digits
        raise BadRequest(f"{where}: a number is too long ({exc})") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"the number {text[:40]} is out of range (a double holds up to 1.8e308)")
    return value


def _no_constant(name: str) -> float:
    raise BadRequest(f"{name} is not a number JSON allows")


_FAST_LISTS = {FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_INT32,
               FieldDescriptor.CPPTYPE_UINT32}
FAST_LIST_LENGTH = 256


def message_to_json(message: Message) -> dict[str, Any]:
    """A response message as a JSON object: proto field names, fields at their default
    values included (so `forecast` is always there), int64 as strings (the JSON mapping).

    Long repeated double/int32 fields (forecasts, row columns) skip json_format's per-value
    conversion (the same values, as it writes them: non-finite doubles as "NaN"/"Infinity")."""
    fast: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated and field.cpp_type in _FAST_LISTS and len(value) >= FAST_LIST_LENGTH:
            fast[field.name] = _number_list(field, value)
        elif (not field.is_repeated and field.message_type is not None
              and _has_long_lists(value)):
            fast[field.name] = message_to_json(value)
    if not fast:
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    rest = type(message)()
    rest.CopyFrom(message)
    for name in fast:
        rest.ClearField(name)
    out = json_format.MessageToDict(rest, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
    out.update(fast)
    return out


def _has_long_lists(message: Message) -> bool:
    return any((f.is_repeated and f.cpp_type in _FAST_LISTS and len(v) >= FAST_LIST_LENGTH)
               or (not f.is_repeated and f.message_type is not None and _has_long_lists(v))
               for f, v in message.ListFields())


def _number_list(field: FieldDescriptor, values: Any) -> list[Any]:
    out = list(values)
    if field.cpp_type == FieldDescriptor.CPPTYPE_DOUBLE and not all(map(math.isfinite, out)):
        out = [v if math.isfinite(v) else ("NaN" if math.isnan(v) else
                                           ("Infinity" if v > 0 else "-Infinity")) for v in out]
    return out


def response_json(route: Route, message: Message) -> Any:
    """The JSON answer of a unary route: the message, or its `response_body` field."""
    if route.response_body:
        return message_to_json(message).get(route.response_body)
    return message_to_json(message)
