"""Server reflection under both names clients ask for, `grpc.reflection.v1` (grpcurl, Postman)
and `grpc.reflection.v1alpha` (older tools), from one servicer.

grpcio-reflection 1.80 ships only the v1alpha module. The v1 service's messages are the same
on the wire (v1 was v1alpha renamed), so the v1alpha servicer is registered a second time under
the v1 service name. It also describes single methods (`forecastapi.v1.ForecastService.Predict`):
protobuf's descriptor pool finds services and messages by name but not methods, so a method name
falls back to the file of its service.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pool
from grpc import aio
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
V1 = "grpc.reflection.v1.ServerReflection"


class GatewayReflection(ReflectionServicer):
    """The v1alpha servicer, able to find the file of a method."""

    def _file_containing_symbol(self, request, fully_qualified_name):
        pool: descriptor_pool.DescriptorPool = self._pool
        try:
            pool.FindFileContainingSymbol(fully_qualified_name)
        except KeyError:
            service_name, _, method = fully_qualified_name.rpartition(".")
            try:
                service = pool.FindServiceByName(service_name)
            except KeyError:
                service = None
            if service is not None and method in service.methods_by_name:
                fully_qualified_name = service_name
        return super()._file_containing_symbol(request, fully_qualified_name)


def enable_reflection(server: aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection for `service_names` (the reflection services are added) as v1 and
    v1alpha."""
    servicer = GatewayReflection((*service_names, V1, V1ALPHA))
    handler = {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}
    for name in (V1ALPHA, V1):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handler),))
