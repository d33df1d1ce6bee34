"""The forecast gateway: the gRPC API (forecastapi.v1) in front of a training/serving backend.

Layout:
- `main.py`        the `forecast-gateway` command: configuration, signals, graceful stop
- `config.py`      `GatewayConfig`, read once from flags and FORECAST_GATEWAY_* variables
- `server.py`      builds the grpc.aio server (servicer, interceptor, health, reflection)
- `servicer.py`    proto <-> domain translation only; delegates to the data plane
- `interceptor.py` request ids, access logs, and the one domain-error -> status-code mapping
- `service.py`     the data plane (no gRPC): uploads, jobs, models, predictions, metrics
- `registry.py`    SQLite registry of retailers, datasets, jobs and model versions
- `storage.py`     the per-retailer directory layout under --data-dir
- `domain.py`      the data plane's value types
- `errors.py`      the gateway's own domain errors (next to forecasting.errors)
- `backends/`      where training and prediction run (`base.py` is the interface; `local.py`,
                   `docker_backend.py`)
- `process.py`     `GatewayProcess`: the gateway as a child process on 127.0.0.1 (tests, bench,
                   demo)
"""
