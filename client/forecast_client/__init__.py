"""Python SDK for the retail forecasting gRPC API (forecastapi.v1).

`ForecastClient` is the entry point (`AsyncForecastClient` offers its core calls to asyncio
code); configuration is typed (`ClientConfig`, `TlsConfig`, `RetryPolicy`, `Timeouts`) and
every failed call raises `ForecastClientError` with the gRPC status code; a call that needs a missing optional dependency (pandas, matplotlib) raises
`MissingExtraError` naming the pip extra. The generated messages live in `forecast_client.pb` (an alias of
`forecast_client._gen.forecastapi.v1.forecast_service_pb2`).
"""

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
from forecast_client.aio import AsyncForecastClient
from forecast_client.client import ForecastClient
from forecast_client.config import ClientConfig, RetryPolicy, Timeouts, TlsConfig
from forecast_client.errors import ForecastClientError
from forecast_client.extras import MissingExtraError

__version__ = "0.1.0"

__all__ = [
    "AsyncForecastClient",
    "ClientConfig",
    "ForecastClient",
    "ForecastClientError",
    "MissingExtraError",
    "RetryPolicy",
    "Timeouts",
    "TlsConfig",
    "pb",
    "pb_grpc",
]
