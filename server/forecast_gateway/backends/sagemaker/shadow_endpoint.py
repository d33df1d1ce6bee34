"""A version in shadow (promote=shadow) on the SageMaker backend: its own endpoint.

A retailer's endpoint serves its live version only, so loading a challenger there would switch
the live requests to it. The version in shadow is deployed to the retailer's shadow endpoint
(`fcshadow-<retailer>`) instead, the shadow's InvokeEndpoint calls go there, and the
endpoint is deleted when the trial ends (a promoted version has been deployed to the live
endpoint by then). A mixin of `SageMakerBackend`, which gives it its lock, deploy locks,
endpoints and the version's model data URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from forecast_gateway.backends.sagemaker import endpoints
from forecast_gateway.backends.sagemaker.endpoints import Deployment
from forecast_gateway.domain import ModelRef
from forecasting.errors import ArtifactError


class ShadowEndpoint:
    """`load_shadow` / `unload_shadow` of `SageMakerBackend` (module docstring)."""

    _lock: threading.Lock
    _deploy_locks: dict[str, threading.Lock]
    _endpoints: endpoints.Endpoints
    _shadows: dict[str, tuple[Path, Deployment]]

    model_data_url: Callable[[ModelRef], str]

    def load_shadow(self, model: ModelRef) -> None:
        """Deploy the version to the retailer's shadow endpoint (its live endpoint keeps
        serving the live version); returns once it is InService."""
        if not (model.path / "artifact.json").is_file():
            raise ArtifactError(f"{model.path} holds no model artifact (artifact.json)")
        with self._lock:
            lock = self._deploy_locks.setdefault(f"{model.retailer}/shadow", threading.Lock())
        with lock:
            with self._lock:
                current = self._shadows.get(model.retailer)
            if current is not None and current[0] == model.path:
                return
            deployed = self._endpoints.deploy(model.retailer, model.version,
                                              self.model_data_url(model),
                                              endpoints.shadow_endpoint_name(model.retailer))
            with self._lock:
                self._shadows[model.retailer] = (model.path, deployed)

    def unload_shadow(self, model: ModelRef, now_live: bool) -> None:
        """Delete the shadow endpoint (a promoted version is on the live endpoint by now)."""
        with self._lock:
            current = self._shadows.get(model.retailer)
            if current is None or current[0] != model.path:
                return
            del self._shadows[model.retailer]
        self._endpoints.delete(current[1].endpoint)
