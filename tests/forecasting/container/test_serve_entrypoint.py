"""`serve` as a real gunicorn process on 127.0.0.1, queried over HTTP."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sagemaker_job import free_port, post, wait_for_ping

ROWS_JSON = {"date": ["2017-08-16", "2017-08-17", "2017-08-16"], "store_nbr": [1, 1, 2],
             "family": ["AUTOMOTIVE", "AUTOMOTIVE", "BEAUTY"], "onpromotion": [0, 2, 0]}


GOLDEN_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "artifact_v1"


@contextlib.contextmanager
def serving(opt_ml: Path, workers: int = 2):
    """`serve` on a free port for the model in `opt_ml`/model; yields its URL."""
    port = free_port()
    env = {**os.environ, "OPT_ML": str(opt_ml), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "serve")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ping(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(trained_opt_ml):
    with serving(trained_opt_ml) as url:
        yield url


def test_json_rows_in_order(server):
    status, ctype, body = post(server, json.dumps(ROWS_JSON).encode(), "application/json")
    assert status == 200 and ctype == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 3 and all(p >= 0 for p in predictions)
    records = [dict(zip(ROWS_JSON, values)) for values in zip(*ROWS_JSON.values())]
    status, _, body2 = post(server, json.dumps({"instances": records[::-1]}).encode(),
                            "application/json")
    assert json.loads(body2)["predictions"] == predictions[::-1]


def test_csv_rows_with_header(server):
    csv = b"date,store_nbr,family,onpromotion\n2017-08-16,1,AUTOMOTIVE,0\n2017-08-17,1,AUTOMOTIVE,2\n"
    status, ctype, body = post(server, csv, "text/csv")
    assert status == 200 and ctype == "text/csv"
    values = [float(v) for v in body.decode().split()]
    _, _, js = post(server, json.dumps(ROWS_JSON).encode(), "application/json")
    assert values == json.loads(js)["predictions"][:2]
    status, ctype, body = post(server, csv, "text/csv", accept="application/json")
    assert ctype == "application/json" and len(json.loads(body)["predictions"]) == 2


def test_headerless_csv_is_ready_feature_rows(server, trained_opt_ml):
    names = json.loads((trained_opt_ml / "model" / "features.json").read_text())["features"]
    assert len(names) == 14 and names[:3] == ["lag_1", "lag_7", "lag_14"]
    status, _, body = post(server, b"3.1,3.0,2.9,3.0,3.0,3.0,2,16,228,8,2017,0,0,0\n"
                                   b"1.0,1.0,,1.0,1.0,,5,19,231,8,2017,3,1,2\n", "text/csv")
    assert status == 200
    assert len(body.decode().split()) == 2


@pytest.mark.parametrize("body, ctype, status, words", [
    (b"x", "text/plain", 415, "not supported"),
    (b"{nope", "application/json", 400, "not valid JSON"),
    (json.dumps({"date": ["2017-08-16"], "store_nbr": [77], "family": ["AUTOMOTIVE"]}).encode(),
     "application/json", 400, "unknown series"),
    (json.dumps({"date": ["2017-08-16"], "store_nbr": [1]}).encode(), "application/json", 400,
     "column 'family': required column is missing"),
    (b"1,2,3\n", "text/csv", 400, "each row needs 14 values"),
    (b"a,b,c\n", "text/csv", 400, "line 1: feature rows must be numbers"),
    (b"0" * (6 * 1024 * 1024 + 1), "text/csv", 413, "limit"),
])
def test_bad_requests_get_4xx_json(server, body, ctype, status, words):
    got, rtype, answer = post(server, body, ctype)
    assert got == status and rtype == "application/json"
    assert words in json.loads(answer)["error"]


def test_serve_exits_when_the_model_cannot_load(tmp_path):
    env = {**os.environ, "OPT_ML": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": str(free_port())}
    result = subprocess.run([str(Path(sys.executable).parent / "serve")], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "cannot load the model" in result.stderr


def test_json_levels_add_the_intervals(server):
    status, _, body = post(server, json.dumps({**ROWS_JSON, "levels": [80, 95]}).encode(),
                           "application/json")
    answer = json.loads(body)
    _, _, plain = post(server, json.dumps(ROWS_JSON).encode(), "application/json")
    assert status == 200 and answer["predictions"] == json.loads(plain)["predictions"]
    assert [i["level"] for i in answer["intervals"]] == [80, 95]
    for i in answer["intervals"]:
        assert len(i["lower"]) == len(i["upper"]) == 3
        assert all(lo <= hi for lo, hi in zip(i["lower"], i["upper"]))
    status, _, body = post(server, json.dumps({**ROWS_JSON, "levels": [150]}).encode(),
                           "application/json")
    assert status == 400 and "levels: 150 is not a level" in json.loads(body)["error"]
    status, _, body = post(server, json.dumps({**ROWS_JSON, "levels": "80"}).encode(),
                           "application/json")
    assert status == 400 and '"levels" must be a list of numbers' in json.loads(body)["error"]


def test_levels_of_a_model_without_intervals_are_409(tmp_path):
    """The stored model cannot serve the request (ArtifactError): 409 here as on the gateway's
    HTTP face, from the one table (forecasting.errors.HTTP_STATUS)."""
    shutil.copytree(GOLDEN_V1, tmp_path / "model")
    rows = {"date": ["2017-08-16"], "store_nbr": [1], "family": ["AUTOMOTIVE"], "levels": [80]}
    with serving(tmp_path, workers=1) as url:
        status, _, body = post(url, json.dumps(rows).encode(), "application/json")
        plain, _, _ = post(url, json.dumps({**rows, "levels": []}).encode(), "application/json")
    answer = json.loads(body)
    assert status == 409 and answer["type"] == "ArtifactError", answer
    assert "saved without prediction intervals" in answer["error"]
    assert plain == 200, "the same model still forecasts without levels"
