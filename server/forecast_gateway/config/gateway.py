"""`GatewayConfig`: the gateway's settings, composed of one section per concern (the gateway's
own, then each backend's). Built once at start-up (`reader.load_config`), checked once here,
then passed explicitly; a flag wins over its variable, which wins over the default."""

from __future__ import annotations

from dataclasses import dataclass, fields

from forecast_gateway.config.core import CoreConfig
from forecast_gateway.config.declare import problem
from forecast_gateway.config.docker import DockerConfig
from forecast_gateway.config.sagemaker import AwsConfig, SageMakerConfig

#: The sections, in `--help` order.
SECTIONS = (CoreConfig, DockerConfig, AwsConfig, SageMakerConfig)


@dataclass(frozen=True)
class GatewayConfig(SageMakerConfig, AwsConfig, DockerConfig, CoreConfig):
    """Every setting of the gateway. Each has a flag `--name-with-dashes` and a variable
    `FORECAST_GATEWAY_NAME` (`forecast-gateway --help` lists them by section)."""

    def __post_init__(self) -> None:
        """ValueError naming the first setting that is wrong: each setting's own check, then
        each section's checks that join several."""
        for f in fields(self):
            found = problem(f, getattr(self, f.name))
            if found:
                raise ValueError(found)
        for section in SECTIONS:
            if "validate" in section.__dict__:
                section.validate(self)  # type: ignore[arg-type]
