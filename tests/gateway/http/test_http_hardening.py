"""Malformed HTTP at the HTTP/JSON face, over raw sockets on 127.0.0.1 (what a fuzzer or a
broken client sends): every answer is a 4xx with the JSON error body, never a 500, never
text/plain; an API key in a malformed header is neither echoed nor logged; a connection that
sends its head a byte at a time is closed; a client that hangs up mid-body is no error.

Each case reproduces one of the 500s or leaks found by fuzzing 2,400 malformed requests
(issue 21). The gateway is in process, so `caplog` sees every log line it writes."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

ROWS = [{"date": "2017-08-16", "store_nbr": 1, "family": "BREAD/BAKERY", "onpromotion": 0}]
KEEPALIVE_S = 2.0


@pytest.fixture()
def face(scripted_gateway, make_artifact):
    """(port, key): retailer `shop` with a live scripted model, its HTTP port and key."""
    from forecast_gateway.dataplane import Tenant

    gw = scripted_gateway(http_port=0, http_keepalive_s=KEEPALIVE_S)
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("v1"))
    return gw.server.http_port, gw.api_key("shop")


def _send(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes or answers one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            try:
                block = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not block:
                break
            data += block
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                headers = _headers(head)
                if len(body) >= int(headers.get("content-length", 1 << 30)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    assert head, f"no answer to {raw[:80]!r}"
    status = int(head.split(b" ", 2)[1])
    return status, _headers(head), body


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}


def _request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             key: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if body and not any(h.lower() == "content-length" for h in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _json_error(answer: tuple[int, dict[str, str], bytes], *statuses: int) -> dict:
    status, headers, body = answer
    assert status in statuses, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:300])
    error = json.loads(body)
    assert set(error) == {"code", "message", "request_id"} and error["message"], error
    return error


def test_a_key_in_a_malformed_header_is_neither_echoed_nor_logged(face, caplog) -> None:
    port, key = face
    caplog.set_level(logging.DEBUG)
    bad = [
        f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\x00\r\n\r\n",
        f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\rX: 1\r\n\r\n",
        f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}{'A' * 9000}\r\n\r\n",
    ]
    for raw in bad:
        error = _json_error(_send(port, raw.encode("latin-1")), 400, 431)
        assert key not in json.dumps(error)
    # A byte gRPC metadata cannot carry: 401, the value not quoted.
    error = _json_error(_send(port, _request("POST", "/predict", b"{}", {
        "Authorization": f"Bearer {key}\xff"})), 401)
    assert error["code"] == "UNAUTHENTICATED" and key not in error["message"]
    assert key not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize(("body", "path"), [
    (b"[" * 100_000, "/predict"),                                      # RecursionError
    (b'{"retailer": "shop", "levels": [1e400], "days": 3}', "/v1/retailers/shop:forecast"),
    (b'{"retailer": "shop", "promote": 1e309}', "/v1/retailers/shop:train"),
    (b'{"retailer": "shop", "days": NaN}', "/v1/retailers/shop:forecast"),
    (b'{"retailer": "shop", "days": ' + b"9" * 5000 + b"}", "/v1/retailers/shop:forecast"),
    (b'{"retailer": "shop", "days": 99999999999999999999}', "/v1/retailers/shop:forecast"),
    (b'{"retailer": "shop", "role": 1e309}', "/v1/admin/apiKeys"),
    (b'{"retailer": "shop", "rows": {"store_nbr": [1e400], "family": ["A"], "day": [1]}}',
     "/predict"),
])
def test_json_no_request_can_hold_is_a_400(face, body: bytes, path: str) -> None:
    port, key = face
    error = _json_error(_send(port, _request("POST", path, body, {
        "Content-Type": "application/json"}, key)), 400, 403)
    assert error["code"] in ("INVALID_ARGUMENT", "PERMISSION_DENIED")


def test_bodies_that_do_not_decode_are_a_400(face) -> None:
    port, key = face
    upload = "/v1/retailers/shop/datasets?header.filename=x.csv"
    cases = [
        _request("POST", "/predict", json.dumps({"retailer": "shop", "rows": ROWS}).encode(),
                 {"Content-Encoding": "gzip", "Content-Type": "application/json"}, key),
        _request("POST", "/predict", b"{}", {"Content-Encoding": "br"}, key),
        _request("POST", upload, b"--x\r\nnot a part", {
            "Content-Type": "multipart/form-data; boundary=zz"}, key),
        _request("POST", upload, b"--x\r\n\r\n", {"Content-Type": "multipart/form-data"}, key),
        _request("POST", upload, b"abc", {"Content-Type": "multipart/form-data; boundary="}, key),
        _request("POST", "/predict", b"{}", {"Content-Length": "-3"}, key),
        _request("POST", "/predict", b"{}", {"Content-Length": "2, 3"}, key),
        _request("POST", "/predict", b"zz\r\n{}\r\n0\r\n\r\n", {
            "Transfer-Encoding": "chunked", "Content-Length": ""}, key),
    ]
    for raw in cases:
        _json_error(_send(port, raw), 400, 413)


def test_the_parsers_own_refusals_are_json(face) -> None:
    port, key = face
    long_url = "/v1/retailers/shop/models?" + "a=1&" * 3000
    for raw, statuses in [
        (_request("GET", long_url, key=key), (414,)),
        (_request("GET", "/metrics", headers={"X-Big": "b" * 9000}, key=key), (431,)),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", (400,)),
        (b"G\x01T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", (400,)),   # TLS to a plain port
    ]:
        _json_error(_send(port, raw), *statuses)
    # An unknown method reaches the routes: 405 with Allow, or 404.
    _json_error(_send(port, _request("PROPFIND", "/predict", key=key)), 405)


def test_an_empty_predict_stream_is_answered(face) -> None:
    port, key = face
    status, headers, body = _send(port, _request("POST", "/v1/retailers/shop:predictStream",
                                                 key=key, headers={"Content-Length": "0"}))
    assert status < 500, body
    assert headers.get("content-type", "").startswith(("application/json",
                                                       "application/x-ndjson")), headers


def test_a_head_sent_a_byte_at_a_time_is_cut_off(face) -> None:
    port, _ = face
    raw = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        closed = False
        for byte in raw:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.5)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "a slow head kept its connection"
        assert time.monotonic() - started < KEEPALIVE_S + 3


def test_a_client_that_hangs_up_mid_body_is_no_error(face, caplog) -> None:
    port, key = face
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request("POST", "/predict", b'{"retailer": "shop", "rows": [',
                              {"Content-Length": "100000", "Content-Type": "application/json"},
                              key))
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while "http client went away" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "http client went away" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_body_that_stops_arriving_is_cut_off(face) -> None:
    port, key = face
    started = time.monotonic()
    error = _json_error(_send(port, _request(
        "POST", "/predict", b'{"retailer": "shop", "rows": [', {
            "Content-Length": "100000", "Content-Type": "application/json"}, key)), 408)
    assert error["code"] == "DEADLINE_EXCEEDED" and "no byte of the request body" in error["message"]
    assert time.monotonic() - started < KEEPALIVE_S + 3
