"""The gateway's configuration: each setting declared once (`declare.setting`) in the section
it belongs to (`core`, `docker`, `sagemaker`), composed into `GatewayConfig`, and read from
flags and FORECAST_GATEWAY_* variables by one reader (`reader`) that the gateway, `keys` and
`forecast-pipeline` share."""

from forecast_gateway.config.declare import ENV_PREFIX, flag, variable
from forecast_gateway.config.gateway import SECTIONS, GatewayConfig
from forecast_gateway.config.reader import (
    add_arguments,
    build_parser,
    from_environ,
    load_config,
    read_values,
)

__all__ = ["ENV_PREFIX", "SECTIONS", "GatewayConfig", "add_arguments", "build_parser", "flag",
           "from_environ", "load_config", "read_values", "variable"]
