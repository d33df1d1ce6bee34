"""The OpenAPI 3.0 document of the HTTP face, generated from the routes and the message
descriptors (nothing written by hand: a field added to a proto shows up here).

Descriptions are the proto comments (`proto_comments`). Schemas follow protobuf's JSON mapping
as the HTTP face answers it: proto field names, int64 as strings, enums by name, Timestamp as
RFC 3339 text. A columnar message (RowBatch) also accepts a list of row objects, and says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from forecast_gateway.http import transcode
from forecast_gateway.http.calls import NDJSON
from forecast_gateway.http.routes import Route, generated_modules

OPENAPI_VERSION = "3.0.3"
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
}
#: Example values by field name, for the request examples the docs page sends as they are.
#: A field without one is left out of an example (its default: unset), so no example carries
#: a placeholder the gateway refuses ("string", days 0, both members of a oneof).
FIELD_EXAMPLES: dict[str, Any] = {
    "retailer": "acme", "dataset_id": "ds-0123456789ab", "model_version": "v1",
    "job_id": "job-0123456789ab", "days": 16, "horizon": 16, "levels": 80, "store_nbr": 1,
    "family": "AUTOMOTIVE", "day": 17394, "onpromotion": 0, "on_hand": 40, "quantity": 12,
    "lead_time_days": 7, "window_days": 28, "model_kind": "xgboost", "chunk_id": "0",
    "approval": "MODEL_APPROVAL_APPROVED",
    "destination": "s3://exports/nightly/acme/forecasts.parquet",
}
#: Messages valid only beside another field's value (PromoteAfter: with promote=shadow), left
#: out of examples as an unset field is.
EXAMPLE_SKIPS = frozenset({"forecastapi.v1.PromoteAfter"})
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer. `code` is the gRPC status name.",
    "properties": {"code": {"type": "string", "example": "NOT_FOUND"},
                   "message": {"type": "string"},
                   "request_id": {"type": "string"}},
    "required": ["code", "message", "request_id"],
}
ERROR_STATUSES = {"400": "INVALID_ARGUMENT: a field is missing or malformed",
                  "401": "UNAUTHENTICATED: no or a bad `Authorization: Bearer` credential",
                  "403": "PERMISSION_DENIED: the credential may not act for this retailer",
                  "404": "NOT_FOUND: unknown retailer, dataset, job or model version",
                  "409": "FAILED_PRECONDITION: e.g. no model trained yet",
                  "413": "RESOURCE_EXHAUSTED: over a size or row limit (use the streaming routes)",
                  "429": "RESOURCE_EXHAUSTED with Retry-After: over a rate limit",
                  "503": "UNAVAILABLE: backend down or gateway stopping; retry",
                  "500": "INTERNAL: a bug; the gateway logged it under the request id"}


def proto_comments(modules: list[ModuleType] | None = None) -> dict[str, str]:
    """The proto comments by full name, from the `<name>_comments.json` that `make protos`
    writes beside each generated `<name>_pb2.py` (empty when one is missing)."""
    comments: dict[str, str] = {}
    for module in generated_modules() if modules is None else modules:
        path = Path(module.__file__ or "")
        sidecar = path.with_name(path.name.removesuffix("_pb2.py") + "_comments.json")
        if sidecar.is_file():
            comments.update(json.loads(sidecar.read_text()))
    return comments


def _with_text(schema: dict[str, Any], text: str | None) -> dict[str, Any]:
    """`schema` with a description (not beside a $ref, where OpenAPI 3.0 ignores it)."""
    if text and "$ref" not in schema:
        return {**schema, "description": text}
    return schema


class _Schemas:
    """components.schemas, filled on demand, described by the proto comments."""

    def __init__(self, comments: dict[str, str]) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
        self.comments = comments

    def ref(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        name = descriptor.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursion stops here
            self.schemas[name] = self._message(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message(self, descriptor: Descriptor) -> dict[str, Any]:
        properties = {f.name: _with_text(self.field(f), self.comments.get(f.full_name))
                      for f in descriptor.fields}
        schema: dict[str, Any] = _with_text({"type": "object", "properties": properties,
                                             "title": descriptor.name},
                                            self.comments.get(descriptor.full_name))
        if transcode._is_columnar(descriptor):
            row = {"type": "object", "properties": {
                f.name: dict(self._scalar(f)) for f in descriptor.fields}}
            if "day" in descriptor.fields_by_name:
                row["properties"]["date"] = {"type": "string", "format": "date",
                                             "description": "YYYY-MM-DD, instead of `day`"}
            return {"title": descriptor.name, "oneOf": [
                schema,
                {"type": "array", "items": row,
                 "description": "The same rows as a list of objects, one per row"}]}
        return schema

    def _scalar(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self._enum(field.enum_type)
        if field.message_type is not None:
            return self.ref(field.message_type)
        return dict(_SCALARS[field.type])

    @staticmethod
    def _enum(descriptor: EnumDescriptor) -> dict[str, Any]:
        return {"type": "string", "enum": [v.name for v in descriptor.values]}

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {"type": "object",
                    "additionalProperties": self._scalar(message.fields_by_name["value"])}
        schema = self._scalar(field)
        if field.is_repeated:
            return {"type": "array", "items": schema}
        return schema


def _openapi_path(route: Route) -> str:
    path = route.template
    for variable in route.variables:
        path = transcode_variable(path, variable)
    return path


def transcode_variable(path: str, variable: str) -> str:
    """`{name=*}` and `{name=**}` -> `{name}` (OpenAPI knows one form)."""
    for suffix in ("=**}", "=*}"):
        path = path.replace("{" + variable + suffix, "{" + variable + "}")
    return path


def _query_parameters(route: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    descriptor = route.method.input_type
    bound = set(route.variables)
    parameters = []
    for path in transcode._leaf_paths(descriptor):
        if path in bound or (route.body and path.split(".")[0] == route.body):
            continue
        if route.body == "*":
            continue
        field = transcode._resolve(descriptor, path)[-1]
        if field.message_type is not None:  # a map: not expressible as query parameters
            continue
        parameters.append({"name": path, "in": "query", "required": False,
                           "schema": schemas.field(field)})
    return parameters


def example(descriptor: Descriptor, skip: frozenset[str] = frozenset(), depth: int = 0) -> dict:
    """A valid request of `descriptor` in JSON, from FIELD_EXAMPLES: known fields only, the
    first member of each oneof, no maps; `skip` names fields the path fills in."""
    out: dict[str, Any] = {}
    columnar = transcode._is_columnar(descriptor)
    for f in descriptor.fields:
        oneof = f.containing_oneof
        if f.name in skip or (oneof is not None and oneof.fields[0] is not f):
            continue
        message = f.message_type
        if message is not None:
            if message.GetOptions().map_entry or message.full_name in _WELL_KNOWN or \
                    message.full_name in EXAMPLE_SKIPS or depth > 4:
                continue
            value: Any = example(message, depth=depth + 1)
            if not value:
                continue
            out[f.name] = [value] if f.is_repeated else value
        elif f.name in FIELD_EXAMPLES:
            value = FIELD_EXAMPLES[f.name]
            out[f.name] = [value] if f.is_repeated or columnar else value
    return out


def _request_body(route: Route, schemas: _Schemas) -> dict[str, Any] | None:
    descriptor = route.method.input_type
    raw = route.raw_body_field
    if raw is not None:
        form = {p: schemas.field(transcode._resolve(descriptor, p)[-1])
                for p in transcode._leaf_paths(descriptor)
                if p not in route.variables and p != raw.name}
        form["file"] = {"type": "string", "format": "binary"}
        return {"required": True, "description": "The file: the raw body (give the other fields "
                "as query parameters) or a multipart form whose file part is the body.",
                "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                    "format": "binary"}},
                            "multipart/form-data": {"schema": {"type": "object",
                                                               "properties": form}}}}
    if not route.body:
        return None
    bound = frozenset(v.split(".")[0] for v in route.variables)
    if route.body == "*":
        schema = schemas.ref(descriptor)
        if bound:   # the path's fields are not the body's (the gateway refuses them differing)
            whole = schemas.schemas[descriptor.full_name]
            schema = {**whole, "properties": {k: v for k, v in whole["properties"].items()
                                              if k not in bound}}
        sample = example(descriptor, bound)
    else:
        field = descriptor.fields_by_name[route.body]
        schema = schemas.field(field)
        sample = example(field.message_type) if field.message_type is not None else {}
    if route.client_streaming:
        return {"required": True, "description": "Newline-delimited JSON: one request message "
                "per line (the path's fields are filled in on every line).",
                "content": {NDJSON: {"schema": schema}}}
    return {"required": False, "content": {"application/json": {"schema": schema,
                                                                 "example": sample}}}


def _operation(route: Route, schemas: _Schemas, index: int) -> dict[str, Any]:
    method = route.method
    service = method.containing_service
    parameters = [{"name": v, "in": "path", "required": True,
                   "description": schemas.comments.get(
                       transcode._resolve(method.input_type, v)[-1].full_name, ""),
                   "schema": schemas.field(transcode._resolve(method.input_type, v)[-1])}
                  for v in route.variables]
    parameters += _query_parameters(route, schemas)
    answer = schemas.ref(method.output_type)
    if route.response_body:
        answer = schemas.field(method.output_type.fields_by_name[route.response_body])
    content_type = NDJSON if route.server_streaming else "application/json"
    kind = ("streaming " if route.client_streaming or route.server_streaming else "") + "RPC"
    operation: dict[str, Any] = {
        "operationId": f"{service.name}_{method.name}" + (f"_{index}" if index else ""),
        "tags": [service.name],
        "summary": method.name + ("" if route.bound else " (unbound: no HTTP annotation yet)"),
        "description": f"The {kind} `{service.full_name}.{method.name}` "
                       f"(gRPC `{route.grpc_path}`).\n\n"
                       + schemas.comments.get(method.full_name, ""),
        "parameters": parameters,
        "responses": {"200": {"description": "OK" + (" (NDJSON: one message per line; an "
                                                     "error after the first line is a last line "
                                                     "{\"error\": {...}})"
                                                     if route.server_streaming else ""),
                              "content": {content_type: {"schema": answer}}},
                      **{code: {"description": text, "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/Error"}}}}
                         for code, text in ERROR_STATUSES.items()}},
    }
    body = _request_body(route, schemas)
    if body is not None:
        operation["requestBody"] = body
    return operation


def build_openapi(routes: list[Route], title: str = "Retail forecasting HTTP/JSON API") -> dict[str, Any]:
    """The OpenAPI document of `routes`."""
    comments = proto_comments()
    schemas = _Schemas(comments)
    paths: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for route in routes:
        full = route.method.full_name
        index = counts.get(full, 0)
        counts[full] = index + 1
        paths.setdefault(_openapi_path(route), {})[route.verb] = _operation(route, schemas, index)
    services = sorted({r.method.containing_service.full_name for r in routes})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": "v1",
                 "description": "Generated from the google.api.http annotations of "
                                + ", ".join(services) + ". Every route calls the same gRPC "
                                "method; bodies follow protobuf's JSON mapping."},
        "paths": paths,
        "components": {"schemas": schemas.schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
        "tags": [{"name": name.rsplit(".", 1)[-1], "description": comments.get(name, "")}
                 for name in services],
    }
