"""The HTTP/JSON face over real HTTP on 127.0.0.1, in front of an in-process gateway with the
scripted backend (forecast = store_nbr * 1000 + day offset): every kind of route, the error
statuses with their JSON bodies, the OpenAPI document and the docs assets."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import requests
import swagger_ui_bundle
from forecast_client import ForecastClient
from forecast_gateway.http.routes import discover_routes, generated_modules
from forecast_gateway.http.status import http_status

ROWS = [{"date": "2017-08-16", "store_nbr": 1, "family": "BREAD/BAKERY", "onpromotion": 0},
        {"date": "2017-08-18", "store_nbr": 2, "family": "BREAD/BAKERY", "onpromotion": 3}]
SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train.csv"


class Http:
    """requests against one gateway's HTTP face, acting for one retailer's key."""

    def __init__(self, gw, retailer: str = "shop"):
        self.gw = gw
        self.base = f"http://127.0.0.1:{gw.server.http_port}"
        self.key = gw.api_key(retailer)
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def __call__(self, method: str, path: str, *, headers: dict | None = None, **kwargs):
        return requests.request(method, self.base + path, timeout=30,
                                headers={**self.headers, **(headers or {})}, **kwargs)


@pytest.fixture()
def http(scripted_gateway, make_artifact) -> Http:
    """Retailer `shop` with a live scripted model v1, and its key."""
    from forecast_gateway.dataplane import Tenant

    gw = scripted_gateway(http_port=0)
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("v1"))
    return Http(gw)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}, body
    assert body["code"] == code and body["message"] and body["request_id"], body
    assert response.headers["X-Request-Id"] == body["request_id"]
    return body


# -- routes ---------------------------------------------------------------------------------------

def test_predict_rows_as_objects_or_columns_on_every_binding(http) -> None:
    expected = [1000.0, 2002.0]  # store 1 day offset 0, store 2 day offset 2
    for path, body in [("/v1/retailers/shop:predict", {"rows": ROWS}),
                       ("/predict", {"retailer": "shop", "rows": ROWS}),
                       ("/api/v1/predict", {"retailer": "shop", "rows": ROWS}),
                       ("/predict", {"retailer": "shop", "rows": {
                           "day": [17394, 17396], "storeNbr": [1, 2],
                           "family": ["BREAD/BAKERY"] * 2, "onpromotion": [0, 3]}})]:
        answer = http("POST", path, json=body)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["forecast"] == expected and answer.json()["model_version"] == "v1"


def test_same_forecasts_as_grpc(http) -> None:
    with ForecastClient(target=http.gw.target, api_key=http.key) as client:
        forecasts = client.predict("shop", date=[r["date"] for r in ROWS],
                                   store_nbr=[r["store_nbr"] for r in ROWS],
                                   family=[r["family"] for r in ROWS],
                                   onpromotion=[r["onpromotion"] for r in ROWS])
    grpc_values = [float(v) for v in forecasts]
    answer = http("POST", "/predict", json={"retailer": "shop", "rows": ROWS}).json()
    assert answer["forecast"] == grpc_values


def test_resource_routes(http) -> None:
    metrics = http("GET", "/metrics", params={"retailer": "shop"})
    assert metrics.status_code == 200, metrics.text
    assert metrics.json()["model"]["version"] == "v1"
    assert {e["name"] for e in metrics.json()["evaluations"]} >= {"xgboost"}
    assert http("GET", "/v1/retailers/shop/metrics").json() == metrics.json()
    models = http("GET", "/v1/retailers/shop/models").json()["models"]
    assert [(m["version"], m["live"]) for m in models] == [("v1", True)]
    live = http("POST", "/v1/retailers/shop/models/v1:setLive")
    assert live.status_code == 200 and live.json()["model"]["live"] is True
    jobs = http("GET", "/v1/retailers/shop/jobs", params={"page_size": "5",
                                                          "state": "JOB_STATE_QUEUED"})
    assert jobs.status_code == 200 and jobs.json()["jobs"] == []


def test_upload_raw_body_and_multipart_then_train_on_the_newest(http) -> None:
    raw = http("POST", "/v1/retailers/shop/datasets", params={"filename": "train.csv"},
               data=SAMPLE.read_bytes(), headers={"Content-Type": "text/csv"})
    assert raw.status_code == 200, raw.text
    first = raw.json()["dataset"]
    assert first["filename"] == "train.csv" and int(first["rows"]) == 19320
    with SAMPLE.open("rb") as f:
        form = http("POST", "/v1/retailers/shop/datasets", files={"file": ("again.csv", f)})
    assert form.status_code == 200, form.text
    newest = form.json()["dataset"]
    assert newest["filename"] == "again.csv" and newest["sha256"] == first["sha256"]
    job = http("POST", "/train", json={"retailer": "shop"})
    assert job.status_code == 200, job.text
    assert job.json()["job"]["dataset_id"] == newest["dataset_id"]
    got = http("GET", f"/v1/retailers/shop/jobs/{job.json()['job']['job_id']}")
    assert got.json()["job"]["job_id"] == job.json()["job"]["job_id"]


def test_predict_stream_ndjson(http) -> None:
    lines = [json.dumps({"chunk_id": str(i), "rows": ROWS}) for i in range(5)]
    answer = http("POST", "/v1/retailers/shop:predictStream", data="\n".join(lines) + "\n",
                  headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/x-ndjson")
    chunks = [json.loads(line) for line in answer.text.splitlines()]
    assert [c["chunk_id"] for c in chunks] == ["0", "1", "2", "3", "4"]
    assert all(c["forecast"] == [1000.0, 2002.0] for c in chunks)
    bad = http("POST", "/v1/retailers/shop:predictStream",
               data=lines[0] + "\n" + json.dumps({"chunk_id": "1", "rows": [{"date": "soon"}]}))
    body = bad.json() if bad.status_code != 200 else json.loads(bad.text.splitlines()[-1])["error"]
    assert body["code"] == "INVALID_ARGUMENT" and "line 2" in body["message"], bad.text


def test_request_id_is_echoed(http) -> None:
    answer = http("POST", "/predict", json={"retailer": "shop", "rows": ROWS},
                  headers={"X-Request-Id": "rid-http-1"})
    assert answer.headers["X-Request-Id"] == "rid-http-1"
    error = http("GET", "/v1/retailers/shop/jobs/job-none", headers={"X-Request-Id": "rid-http-2"})
    assert _error(error, 404, "NOT_FOUND")["request_id"] == "rid-http-2"


# -- errors ---------------------------------------------------------------------------------------

def test_bad_input_is_400_naming_the_field(http) -> None:
    body = _error(http("POST", "/predict", json={"retailer": "shop", "rows": [
        {"date": "2017-08-16", "store_nbr": 1, "family": "X"}, {"date": "2017-13-01",
                                                                 "store_nbr": 1, "family": "X"}]}),
        400, "INVALID_ARGUMENT")
    assert "rows[1].date" in body["message"]
    body = _error(http("POST", "/predict", json={"retailer": "shop", "rows": ROWS, "colour": 1}),
                  400, "INVALID_ARGUMENT")
    assert "colour" in body["message"]
    body = _error(http("POST", "/predict", data="{not json", headers={"Content-Type":
                                                                      "application/json"}),
                  400, "INVALID_ARGUMENT")
    assert "not valid JSON" in body["message"]
    body = _error(http("POST", "/v1/retailers/shop:predict", json={"retailer": "other",
                                                                   "rows": ROWS}),
                  400, "INVALID_ARGUMENT")
    assert "retailer" in body["message"]
    # The data plane's own check, reached through gRPC: column lengths differ.
    body = _error(http("POST", "/predict", json={"retailer": "shop", "rows": {
        "day": [17394, 17395], "store_nbr": [1], "family": ["X", "X"]}}), 400, "INVALID_ARGUMENT")
    assert "store_nbr" in body["message"]


def test_unauthenticated_is_401_and_another_retailer_is_403(http) -> None:
    body = _error(http("GET", "/v1/retailers/shop/models", headers={"Authorization": ""}),
                  401, "UNAUTHENTICATED")
    assert body["message"]
    _error(http("GET", "/v1/retailers/shop/models", headers={"Authorization": "Bearer nope"}),
           401, "UNAUTHENTICATED")
    other = Http(http.gw, "other")
    _error(other("POST", "/predict", json={"retailer": "shop", "rows": ROWS}),
           403, "PERMISSION_DENIED")


def test_not_found_and_conflict(http) -> None:
    _error(http("POST", "/predict", json={"retailer": "shop", "model_version": "v9",
                                          "rows": ROWS}), 404, "NOT_FOUND")
    _error(http("GET", "/nowhere"), 404, "NOT_FOUND")
    _error(http("DELETE", "/predict"), 405, "UNIMPLEMENTED")
    fresh = Http(http.gw, "fresh")  # a retailer without a model: FAILED_PRECONDITION
    body = _error(fresh("POST", "/predict", json={"retailer": "fresh", "rows": ROWS}),
                  409, "FAILED_PRECONDITION")
    assert "no trained model" in body["message"]
    _error(fresh("POST", "/train", json={"retailer": "fresh"}), 409, "FAILED_PRECONDITION")


def test_over_the_limits_is_413_pointing_at_the_streams(scripted_gateway, make_artifact) -> None:
    from forecast_gateway.dataplane import Tenant

    gw = scripted_gateway(http_port=0, max_predict_rows=10, max_message_bytes=64 * 1024,
                          max_upload_chunk_bytes=32 * 1024)
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("v1"))
    http = Http(gw)
    rows = ROWS * 6  # 12 rows > 10
    body = _error(http("POST", "/predict", json={"retailer": "shop", "rows": rows}),
                  413, "RESOURCE_EXHAUSTED")
    assert "10" in body["message"] and ":predictStream" in body["message"]
    big = {"retailer": "shop", "rows": ROWS * 2000}  # ~200 KB > 64 KiB
    body = _error(http("POST", "/predict", json=big), 413, "RESOURCE_EXHAUSTED")
    assert "65,536 bytes" in body["message"] and ":predictStream" in body["message"]
    # The same rows go through the stream in chunks within the limits.
    lines = "\n".join(json.dumps({"chunk_id": str(i), "rows": ROWS * 5}) for i in range(300))
    answer = http("POST", "/v1/retailers/shop:predictStream", data=lines)
    assert answer.status_code == 200 and len(answer.text.splitlines()) == 300


def test_backend_down_is_503_and_a_bug_is_500(http) -> None:
    http.gw.backend.down = True
    _error(http("POST", "/predict", json={"retailer": "shop", "rows": ROWS}),
           503, "UNAVAILABLE")
    http.gw.backend.down = False
    http.gw.backend.fail_with = ZeroDivisionError("oops")
    body = _error(http("POST", "/predict", json={"retailer": "shop", "rows": ROWS}),
                  500, "INTERNAL")
    assert "oops" not in body["message"] and body["request_id"] in body["message"]


def test_status_mapping_covers_every_promised_status() -> None:
    code = grpc.StatusCode
    assert {c: http_status(c) for c in (
        code.INVALID_ARGUMENT, code.UNAUTHENTICATED, code.PERMISSION_DENIED, code.NOT_FOUND,
        code.FAILED_PRECONDITION, code.RESOURCE_EXHAUSTED, code.UNAVAILABLE, code.INTERNAL,
        code.UNKNOWN)} == {
        code.INVALID_ARGUMENT: 400, code.UNAUTHENTICATED: 401, code.PERMISSION_DENIED: 403,
        code.NOT_FOUND: 404, code.FAILED_PRECONDITION: 409, code.RESOURCE_EXHAUSTED: 413,
        code.UNAVAILABLE: 503, code.INTERNAL: 500, code.UNKNOWN: 500}
    # A rate or quota limit says when to come back: 429.
    assert http_status(code.RESOURCE_EXHAUSTED, {"retry-after": "3"}) == 429


# -- OpenAPI and docs -----------------------------------------------------------------------------

def test_openapi_lists_every_rpc_of_every_service(http) -> None:
    document = http("GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    operations = {op["description"].split("`")[1]
                  for path in document["paths"].values() for op in path.values()}
    declared = {m.full_name for module in generated_modules()
                for s in module.DESCRIPTOR.services_by_name.values() for m in s.methods}
    assert operations == declared
    assert {"/train", "/predict", "/metrics", "/api/v1/predict",
            "/v1/retailers/{retailer}:predict"} <= set(document["paths"])
    predict = document["paths"]["/predict"]["post"]
    schema = predict["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    rows = document["components"]["schemas"][schema.rsplit("/", 1)[1]]["properties"]["rows"]
    row_batch = document["components"]["schemas"][rows["$ref"].rsplit("/", 1)[1]]
    assert any(s.get("type") == "array" for s in row_batch["oneOf"])  # rows as objects
    assert len(discover_routes()) >= len(declared)


def test_docs_page_and_assets_come_from_the_installed_package(http) -> None:
    page = http("GET", "/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text and '="//' not in page.text  # nothing from elsewhere
    asset = http("GET", "/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert asset.content == (Path(swagger_ui_bundle.swagger_ui_path)
                             / "swagger-ui-bundle.js").read_bytes()


def test_http_port_settings(tmp_path: Path) -> None:
    from forecast_gateway.config import load_config

    assert load_config([], environ={}).http_port == -1  # off by default
    assert load_config([], environ={"FORECAST_GATEWAY_HTTP_PORT": "8080"}).http_port == 8080
    assert load_config(["--http-port", "0"], environ={"FORECAST_GATEWAY_HTTP_PORT": "8080"}) \
        .http_port == 0
    with pytest.raises(SystemExit):
        load_config(["--http-port", "-2"], environ={})
    pem = tmp_path / "cert.pem"
    pem.write_text("not checked here")
    with pytest.raises(SystemExit):  # the HTTP face speaks plain HTTP only
        load_config(["--http-port", "0", "--tls-cert", str(pem), "--tls-key", str(pem)],
                    environ={})


def test_an_rpc_without_an_annotation_gets_the_fallback_route() -> None:
    from forecast_gateway.http.routes import routes_of_service
    from grpc_health.v1 import health_pb2

    routes = routes_of_service(health_pb2.DESCRIPTOR.services_by_name["Health"])
    check = next(r for r in routes if r.method.name == "Check")
    assert (check.verb, check.template, check.body, check.bound) == (
        "post", "/rpc/grpc.health.v1.Health/Check", "*", False)
    assert check.match("/rpc/grpc.health.v1.Health/Check") == {}


def test_a_get_route_refuses_a_body_and_unknown_query_parameters(http) -> None:
    body = _error(http("GET", "/v1/retailers/shop/models", data=b'{"retailer": "x"}'),
                  400, "INVALID_ARGUMENT")
    assert "query parameters" in body["message"]
    body = _error(http("GET", "/metrics", params={"retailer": "shop", "colour": "red"}),
                  400, "INVALID_ARGUMENT")
    assert "colour" in body["message"]
