"""The HTTP routes, read at run time from the `google.api.http` annotations of every RPC in the
generated descriptors (`forecast_client._gen`): the proto declares each route once, nothing here
lists them.

An RPC without an annotation still gets one route, `POST /rpc/<package.Service>/<Method>` with
the whole request message as the body (grpc-gateway's "unbound methods"), so an RPC added to a
proto is reachable over HTTP before anyone annotates it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

GENERATED_PACKAGE = "forecast_client._gen"
VERBS = ("get", "put", "post", "delete", "patch")
# `{field.path}` or `{field.path=*}` (one segment) or `{field.path=**}` (the rest of the path).
_VARIABLE = re.compile(r"\{([A-Za-z_][\w.]*)(?:=(\*\*?))?\}")


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    verb: str
    """Lower-case HTTP method."""
    template: str
    """The path template as the proto wrote it, e.g. `/v1/retailers/{retailer}:predict`."""
    pattern: re.Pattern[str]
    """Matches a request path; group i is the value of `variables[i]`."""
    variables: tuple[str, ...]
    """Field paths bound by the path, in order (e.g. ("header.retailer",))."""
    body: str
    """"*" (the whole message), a top-level field name, or "" (no body: query parameters)."""
    response_body: str
    """A response field to answer with instead of the whole response ("" for all of it)."""
    method: MethodDescriptor
    """The RPC."""
    bound: bool
    """False for the fallback route of an RPC without an annotation."""

    @property
    def grpc_path(self) -> str:
        """The method's wire name, `/package.Service/Method`."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)

    @property
    def client_streaming(self) -> bool:
        return self.method.client_streaming

    @property
    def server_streaming(self) -> bool:
        return self.method.server_streaming

    @property
    def raw_body_field(self) -> FieldDescriptor | None:
        """The `bytes` field a client-streaming RPC's raw HTTP body is cut into (e.g. an upload's
        `chunk`), or None when the body is JSON."""
        if not self.client_streaming or self.body in ("", "*"):
            return None
        field = self.method.input_type.fields_by_name[self.body]
        return field if field.type == FieldDescriptor.TYPE_BYTES else None

    def match(self, path: str) -> dict[str, str] | None:
        """The path variables (field path -> value) when `path` matches, else None."""
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return dict(zip(self.variables, found.groups()))


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    if not template.startswith("/"):
        raise ValueError(f"HTTP rule path {template!r} must start with '/'")
    parts: list[str] = []
    variables: list[str] = []
    end = 0
    for found in _VARIABLE.finditer(template):
        parts.append(re.escape(template[end:found.start()]))
        variables.append(found.group(1))
        # One segment stops at '/' and at the ':verb' suffix; '**' takes the rest of the path.
        parts.append("(.+)" if found.group(2) == "**" else "([^/:]+)")
        end = found.end()
    tail = template[end:]
    if "{" in tail or "}" in tail:
        raise ValueError(f"HTTP rule path {template!r}: unsupported variable syntax")
    parts.append(re.escape(tail))
    return re.compile("".join(parts)), tuple(variables)


def _check_fields(method: MethodDescriptor, rule_body: str, variables: tuple[str, ...]) -> None:
    """Fail at start-up, naming the RPC, when an annotation names a field that does not exist."""
    for path in variables:
        descriptor = method.input_type
        for name in path.split("."):
            if descriptor is None or name not in descriptor.fields_by_name:
                raise ValueError(f"{method.full_name}: HTTP path variable {path!r} is not a field "
                                 f"of {method.input_type.full_name}")
            descriptor = descriptor.fields_by_name[name].message_type
    if rule_body not in ("", "*") and rule_body not in method.input_type.fields_by_name:
        raise ValueError(f"{method.full_name}: HTTP body {rule_body!r} is not a field of "
                         f"{method.input_type.full_name}")


def _routes_of_rule(method: MethodDescriptor, rule: http_pb2.HttpRule) -> list[Route]:
    pattern_kind = rule.WhichOneof("pattern")
    if pattern_kind == "custom":
        verb, template = rule.custom.kind.lower(), rule.custom.path
    elif pattern_kind in VERBS:
        verb, template = pattern_kind, getattr(rule, pattern_kind)
    else:
        raise ValueError(f"{method.full_name}: HTTP rule without a path")
    pattern, variables = _compile(template)
    _check_fields(method, rule.body, variables)
    routes = [Route(verb=verb, template=template, pattern=pattern, variables=variables,
                    body=rule.body, response_body=rule.response_body, method=method, bound=True)]
    for extra in rule.additional_bindings:
        routes.extend(_routes_of_rule(method, extra))
    return routes


def routes_of_service(service: ServiceDescriptor) -> list[Route]:
    """Every route of one service's RPCs, in declaration order."""
    routes: list[Route] = []
    for method in service.methods:
        options = method.GetOptions()
        if options.HasExtension(annotations_pb2.http):
            routes.extend(_routes_of_rule(method, options.Extensions[annotations_pb2.http]))
        else:
            template = f"/rpc/{service.full_name}/{method.name}"
            pattern, variables = _compile(template)
            routes.append(Route(verb="post", template=template, pattern=pattern,
                                variables=variables, body="*", response_body="",
                                method=method, bound=False))
    return routes


def generated_modules(package: str = GENERATED_PACKAGE) -> list[ModuleType]:
    """Every `*_pb2` module under the generated package, imported (which registers its
    descriptors and the annotations' extension)."""
    root = importlib.import_module(package)
    modules = []
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith("_pb2"):
            modules.append(importlib.import_module(info.name))
    return modules


def discover_routes(package: str = GENERATED_PACKAGE) -> list[Route]:
    """The routes of every service in the generated descriptors. Raises ValueError when an
    annotation is malformed or two RPCs claim the same verb and path."""
    routes: list[Route] = []
    for module in generated_modules(package):
        for service in module.DESCRIPTOR.services_by_name.values():
            routes.extend(routes_of_service(service))
    seen: dict[tuple[str, str], str] = {}
    for route in routes:
        key = (route.verb, route.template)
        if key in seen:
            raise ValueError(f"HTTP route {route.verb.upper()} {route.template} is declared by "
                             f"both {seen[key]} and {route.method.full_name}")
        seen[key] = route.method.full_name
    return routes
