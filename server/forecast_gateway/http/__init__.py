"""The gateway's HTTP/JSON face (docs/http_api.md): routes from the protos' google.api.http
annotations, each a call of the gateway's own gRPC service over loopback."""
