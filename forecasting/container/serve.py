"""``serve``: the SageMaker hosting entrypoint (``docker run IMAGE serve``).

A gunicorn server (worker processes, not a development server) on port 8080 or
``$SAGEMAKER_BIND_TO_PORT``. Each worker loads the model from /opt/ml/model once, before it
takes requests; a model that fails to load stops the server. Routes:

- ``GET /ping``: 200 once the model is loaded.
- ``POST /invocations``:
  - ``application/json``: future rows, columnar ``{"date": [...], "store_nbr": [...],
    "family": [...], "onpromotion": [...]}``, or ``{"instances": [{...}, ...]}``, or a list
    of row objects. Answer: ``{"predictions": [...]}``, one per row, in order. An object may
    add ``"levels": [80, 95]`` (percent): the answer then also has ``"intervals": [{"level":
    80, "lower": [...], "upper": [...]}, ...]`` (409 ``ArtifactError`` for a model saved
    without intervals).
  - ``text/csv`` with a header row naming ``date``: future rows. Answer: one forecast a line.
  - ``text/csv`` without a header: the built-in XGBoost convention, one ready feature row per
    line in ``features.json`` order. Answer: one forecast a line.
  ``Accept: application/json`` or ``text/csv`` picks the answer's format.

Status codes (the one table, `forecasting.errors.HTTP_STATUS`, that the gateway's HTTP face
uses too): 400 bad input, 409 a stored model that cannot serve the request (`ArtifactError`),
413 body over 6 MB, 415 unsupported content type, 500 our bug;
every error body is JSON ``{"error": ..., "type": ...}`` (and ``"field"``, ``"reason"`` for a
``ForecastRequestError``; ``invocations.py`` encodes and decodes it).
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pandas as pd
from flask import Flask, Response, request

from forecasting.container.env import MAX_BODY_BYTES, ServingEnv
from forecasting.container.invocations import error_body
from forecasting.errors import ArtifactError, UserError, http_status
from forecasting.predictor import Predictor
from forecasting.schema import read_table, validate_future

log = logging.getLogger("forecasting.serve")
JSON = "application/json"
CSV = "text/csv"


class RequestError(Exception):
    """An HTTP-level problem with a status of its own (413, 415)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_json(body: bytes) -> tuple[pd.DataFrame, list[float]]:
    """The rows of a JSON body and the interval ``levels`` it asks for (none: [])."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"body is not valid JSON: {exc}") from None
    levels: list = []
    if isinstance(payload, dict) and "levels" in payload:
        levels = payload.pop("levels")
        if not isinstance(levels, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels):
            raise UserError('"levels" must be a list of numbers, e.g. [80, 95]')
    if isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    if isinstance(payload, list):
        if not all(isinstance(r, dict) for r in payload):
            raise UserError("a JSON list must hold row objects like "
                            '{"date": "2017-08-16", "store_nbr": 1, "family": "BEVERAGES"}')
        return pd.DataFrame.from_records(payload), levels
    if isinstance(payload, dict):
        lengths = {k: len(v) for k, v in payload.items() if isinstance(v, list)}
        if len(lengths) != len(payload) or len(set(lengths.values())) > 1:
            raise UserError("a JSON object must map each column to a list, all of one length")
        return pd.DataFrame(payload), levels
    raise UserError("JSON body must be an object of columns, {\"instances\": [...]}, or a list")


def parse_feature_rows(body: bytes) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"body is not UTF-8 text (byte {exc.start})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise UserError("body is empty")
    try:
        return np.array([[float(v) if v.strip() else np.nan for v in ln.split(",")]
                         for ln in lines], dtype=np.float32)
    except ValueError:
        for number, ln in enumerate(lines, 1):
            try:
                [float(v) for v in ln.split(",") if v.strip()]
            except ValueError:
                raise UserError(f"line {number}: feature rows must be numbers (a CSV with "
                                f"future rows needs a header naming date, store_nbr, "
                                f"family)") from None
        raise


def _is_header_csv(body: bytes) -> bool:
    first = body.split(b"\n", 1)[0].lower()
    return b"date" in first and b"store_nbr" in first


def _drain(stream, length: int, limit: int = 8 * MAX_BODY_BYTES) -> None:
    """Read and drop an oversized body so the client sees the 413, not a reset connection."""
    left = min(length, limit)
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)


def format_answer(values: np.ndarray, accept: str, content_type: str) -> Response:
    wanted = accept if accept in (JSON, CSV) else content_type
    if wanted == CSV:
        body = "\n".join(repr(float(v)) for v in values) + "\n"
        return Response(body, mimetype=CSV)
    return Response(json.dumps({"predictions": values.tolist()}), mimetype=JSON)


def create_app(model_dir=None, predictor: Predictor | None = None) -> Flask:
    """The WSGI app. Loads the model now: a worker never serves without one."""
    app = Flask("forecasting-serve")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    model = predictor or Predictor.load(model_dir or ServingEnv.from_environ().model_dir)

    def error(status: int, message: str, kind: str, exc: BaseException | None = None) -> Response:
        return Response(error_body(message, kind, exc), status=status, mimetype=JSON)

    @app.get("/ping")
    def ping():
        return Response(json.dumps({"status": "ok", "model_end": str(model.last_date)}),
                        mimetype=JSON)

    @app.post("/invocations")
    def invocations():
        content_type = (request.mimetype or "").lower()
        # The answer's format: what Accept asks for, else the request's own type.
        order = [CSV, JSON] if content_type == CSV else [JSON, CSV]
        accept = request.accept_mimetypes.best_match(order) or ""
        try:
            if request.content_length and request.content_length > MAX_BODY_BYTES:
                _drain(request.environ["wsgi.input"], request.content_length)
                raise RequestError(413, f"body is {request.content_length} bytes; the limit "
                                        f"is {MAX_BODY_BYTES}")
            body = request.get_data(cache=False)
            if content_type == JSON:
                frame, levels = parse_json(body)
                if levels:
                    values, bounds = model.predict_frame_intervals(frame, levels)
                    return Response(json.dumps({"predictions": values.tolist(), "intervals": [
                        {"level": level, "lower": lower.tolist(), "upper": upper.tolist()}
                        for level, (lower, upper) in bounds.items()]}), mimetype=JSON)
                values = model.predict(frame)
            elif content_type == CSV:
                if _is_header_csv(body):
                    values = model.predict(validate_future(read_table(body))[0])
                else:
                    values = model.predict_feature_rows(parse_feature_rows(body))
            else:
                raise RequestError(415, f"content type {content_type or 'none'!r} is not "
                                        f"supported; use {JSON} or {CSV}")
            return format_answer(values, accept, content_type)
        except RequestError as exc:
            return error(exc.status, str(exc), "RequestError")
        except UserError as exc:   # 400; 409 for a stored model that cannot serve (ArtifactError)
            return error(http_status(exc), str(exc), type(exc).__name__, exc)
        except Exception:
            log.exception("invocation failed")
            return error(500, "internal error while forecasting; see the server log",
                         "InternalError")

    @app.errorhandler(413)
    def too_large(_):
        return error(413, f"body is over the limit of {MAX_BODY_BYTES} bytes", "RequestError")

    @app.errorhandler(404)
    def not_found(_):
        return error(404, f"no route {request.method} {request.path}; use GET /ping or "
                          f"POST /invocations", "NotFound")

    @app.errorhandler(405)
    def not_allowed(_):
        return error(405, f"{request.method} is not allowed on {request.path}", "NotAllowed")

    return app


def main(argv: list[str] | None = None) -> int:
    """Console script ``serve``: run gunicorn with ``$SAGEMAKER_MODEL_SERVER_WORKERS`` workers."""
    from gunicorn.app.base import BaseApplication

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = ServingEnv.from_environ()
    try:  # fail fast, before forking workers, with a readable reason
        from forecasting.artifact import check
        check(env.model_dir)
    except ArtifactError as exc:
        print(f"serve: cannot load the model: {exc}", file=sys.stderr, flush=True)
        return _exit(argv, 1)

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{env.host}:{env.port}")
            self.cfg.set("workers", env.workers)
            self.cfg.set("timeout", env.timeout)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("accesslog", "-")
            self.cfg.set("limit_request_line", 8190)

        def load(self):
            return create_app(env.model_dir)

    print(f"serving {env.model_dir} on {env.host}:{env.port} with {env.workers} worker(s)",
          flush=True)
    Server().run()
    return _exit(argv, 0)


def _exit(argv, code: int) -> int:
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
