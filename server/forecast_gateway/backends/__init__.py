"""Where training and prediction run. `base.Backend` is the interface; `create_backend` picks
an implementation by name (`--backend`)."""

from __future__ import annotations

from forecast_gateway.backends.base import Backend
from forecast_gateway.config import GatewayConfig


def create_backend(config: GatewayConfig) -> Backend:
    """The backend named by `config.backend`. Unknown names raise ValueError."""
    if config.backend == "local":
        from forecast_gateway.backends.local import LocalBackend

        return LocalBackend.from_config(config)
    if config.backend == "docker":
        try:
            from forecast_gateway.backends.docker_backend import DockerBackend  # type: ignore
        except ImportError as exc:
            raise ValueError(f"backend 'docker' is not available: {exc}") from None
        return DockerBackend.from_config(config)
    if config.backend == "sagemaker":
        from forecast_gateway.backends.sagemaker.backend import SageMakerBackend

        return SageMakerBackend.from_config(config)
    raise ValueError(f"unknown backend {config.backend!r} (choose local, docker or sagemaker)")
