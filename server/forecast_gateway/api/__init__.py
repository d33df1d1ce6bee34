"""The gateway's gRPC face: the servicers (translation only), the interceptor that
authenticates, names each call and maps errors to status codes (`interceptor.to_status`), the
messages each servicer translates (`*_messages.py`), what they share at the edge (`edge.py`) and
reflection. The HTTP/JSON face (`forecast_gateway.http`) calls these servicers through gRPC."""
