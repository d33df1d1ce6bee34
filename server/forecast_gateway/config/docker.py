"""The docker backend's settings (`--backend docker`): its images, the docker command and its
timeouts. Declared once (`declare.setting`); the backend reads them from `GatewayConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from forecast_gateway.config.declare import positive, setting
from forecasting.container.env import MAX_BODY_BYTES


@dataclass(frozen=True)
class DockerConfig:
    """The docker backend's settings."""

    TITLE: ClassVar[str] = "docker backend (--backend docker)"

    docker_training_image: str = setting(
        "retail-forecast-training:latest",
        "The image run as `IMAGE train`.")
    docker_inference_image: str = setting(
        "retail-forecast-inference:latest",
        "The image run as `IMAGE serve`.")
    docker_cli: str = setting("docker", "The docker command.")
    docker_ping_timeout_s: float = setting(
        180.0,
        "How long a new inference container may take to answer /ping.",
        check=positive)
    docker_request_timeout_s: float = setting(
        70.0,
        "One /invocations call (the contract's 60 s + slack).",
        check=positive)
    docker_drain_s: float = setting(
        5.0,
        "A retired container is stopped this long after its last request (requests "
        "already routed to it finish first).",
        check=positive)
    docker_serve_workers: int = setting(
        1,
        "Gunicorn workers per inference container.",
        check=positive)
    docker_max_body_bytes: int = setting(
        MAX_BODY_BYTES,
        "Largest /invocations body sent (the chunking limit; at most the contract's "
        "6 MB, lower it for serverless endpoints or tests).",
        check=positive)
