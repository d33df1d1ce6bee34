"""Seeded fuzzing of the HTTP/JSON face over raw sockets: every malformed request must get a 4xx
with the JSON error body (never a 5xx, never text/plain, never a silent close), no answer may
contain the API key, and the gateway must still serve the same models afterwards.

Kinds of request, over every route of every service (`forecast_gateway.http.routes`):
- JSON bodies with hostile values: nesting 10,000 deep, NaN, 1e400, integers of 5,000 digits,
  numbers past int32 and int64, strings with NUL or 10,000 characters, wrong types, unknown
  fields, rows as objects with odd keys;
- bodies that are not what their headers say: random bytes, invalid UTF-8, truncated JSON,
  `Content-Encoding` gzip, br or junk on a plain body, a multipart body with a bad or missing
  boundary, a broken chunked body, an empty NDJSON stream;
- the request head itself: the key with a NUL, a bare CR, 9,000 more bytes or a byte outside
  ASCII after it; a missing or a wrong key; unknown and malformed methods, URLs of 9,000 bytes,
  path variables with `..`, `%00` or a newline, unknown query parameters, bad Content-Length,
  a header of 9,000 bytes, TLS and random bytes instead of HTTP.

    python -m bench.http_fuzz_bench --model-dir DIR [--requests 10000] [--seed 7]

`run(port, key, requests, seed)` is what the test calls (2,000 requests, tests/gateway/
test_http_fuzz.py); `bench(model_dir)` is `make bench`'s 10,000 against a gateway process.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

from bench.fuzz_bench import RETAILER, import_model

ROWS = [{"date": "2017-08-16", "store_nbr": 1, "family": "BREAD/BAKERY", "onpromotion": 0}]
HOSTILE_VALUES: list[bytes] = [
    b"[" * 10_000, b"{\"a\":" * 5_000, b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e309",
    b"9" * 5_000, b"2147483648", b"-9223372036854775809", b"18446744073709551616", b"1.5",
    b"\"\\u0000\"", b"\"" + b"x" * 10_000 + b"\"", b"\"\\ud800\"", b"true", b"null", b"[]", b"{}",
    b"\"2017-13-45\"", b"\"../../etc/passwd\"", b"\"shop\\n\"", b"[1e400]", b"[NaN, 1]",
    b"{\"nested\": {\"deeper\": [1, 2, {}]}}", b"\"\xff\xfe\"",
]
#: Heads that are not HTTP/1.1. (Not bare empty lines: HTTP lets a server skip those while it
#: waits for a request line, RFC 9112 section 2.2, so they get no answer by design.)
HEADS = [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET\r\n\r\n",
         b"G\x01T / HTTP/1.1\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
         b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
         b"GET /metrics HTTP/1.1\r\n: x\r\n\r\n"]


@dataclass
class Report:
    """What the fuzzed requests got: statuses by count, and every answer that broke a rule."""

    requests: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    forbidden: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"requests": self.requests, "statuses": dict(sorted(self.statuses.items())),
                "forbidden": self.forbidden[:20], "forbidden_count": len(self.forbidden)}


def _templates() -> list[tuple[str, str, bool]]:
    """(verb, path template, takes a body) of every route."""
    from forecast_gateway.http.routes import discover_routes

    return [(r.verb.upper(), r.template, bool(r.body)) for r in discover_routes()]


def _path(template: str, rng: random.Random) -> str:
    """The template with its variables filled: mostly the fuzzed retailer, sometimes hostile."""
    values = ["shop", RETAILER, RETAILER, "v1", "job-000000000000", "..", "%00", "a%0Ab",
              "x" * 300, "%ff", "shop%2F..", ""]
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            end = template.index("}", i)
            name = template[i + 1:end]
            out.append(RETAILER if "retailer" in name and rng.random() < 0.6
                       else rng.choice(values))
            i = end + 1
        else:
            out.append(template[i])
            i += 1
    path = "".join(out)
    if rng.random() < 0.3:
        path += "?" + "&".join(rng.choice(["days=1e400", "page_size=-1", "x=1", "days=" + "9" * 50,
                                           "header.filename=%00", "retailer=other", "a", "=&="])
                               for _ in range(rng.randint(1, 3)))
    return path


def _json_body(rng: random.Random) -> bytes:
    """A JSON object with at least one hostile value."""
    fields = {"retailer": b"\"" + RETAILER.encode() + b"\"",
              "rows": json.dumps(ROWS).encode()}
    name = rng.choice(["retailer", "rows", "days", "levels", "promote", "role", "model_version",
                       "hyperparameters", "chunk_id", "horizon", "label", "colour"])
    fields[name] = rng.choice(HOSTILE_VALUES)
    return b"{" + b", ".join(b"\"%s\": %s" % (k.encode(), v) for k, v in fields.items()) + b"}"


def _request(verb: str, path: str, key: str, rng: random.Random, body: bytes = b"",
             headers: list[tuple[str, str]] | None = None) -> bytes:
    head = [f"{verb} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    auth = rng.random()
    if auth < 0.75:
        head.append(f"Authorization: Bearer {key}")
    elif auth < 0.85:
        head.append(f"Authorization: Bearer {key}" + rng.choice(["\x00", "\rX: 1", "A" * 9000,
                                                                 "\xff", " \t", "\x7f"]))
    elif auth < 0.95:
        head.append(rng.choice(["Authorization: Bearer nope", "Authorization: Basic eDp5",
                                "Authorization: ", f"Authorization: {key}"]))
    headers = list(headers or [])
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    head += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body


def case(routes: list[tuple[str, str, bool]], key: str, rng: random.Random) -> bytes:
    """One fuzzed request's bytes."""
    verb, template, _ = rng.choice(routes)
    path = _path(template, rng)
    kind = rng.random()
    if kind < 0.45:
        return _request(verb, path, key, rng, _json_body(rng), [("Content-Type", "application/json")])
    if kind < 0.60:
        body = rng.choice([rng.randbytes(rng.randint(1, 2000)), b"{\"retailer\": \"", b"\xff\xfe{}",
                           b"\n".join([_json_body(rng)] * 3), b"{}\n[]\n\x00\n"])
        return _request(verb, path, key, rng, body)
    if kind < 0.70:
        plain = json.dumps({"retailer": RETAILER, "rows": ROWS}).encode()
        encoding, body = rng.choice([("gzip", plain), ("br", plain), ("x-junk", plain),
                                     ("gzip", gzip.compress(plain)[:-4]), ("deflate", b"\x00\x01")])
        return _request(verb, path, key, rng, body, [("Content-Encoding", encoding)])
    if kind < 0.78:
        boundary = rng.choice(["", "zz", "a" * 200, "\"\"", "x; y"])
        body = rng.choice([b"--x\r\nnot a part", b"--zz\r\nContent-Disposition: form-data\r\n\r\n",
                           b"--zz--", b"", rng.randbytes(100)])
        ctype = "multipart/form-data" + (f"; boundary={boundary}" if boundary or rng.random() < 0.5
                                         else "")
        return _request(verb, path, key, rng, body, [("Content-Type", ctype)])
    if kind < 0.84:
        body = rng.choice([b"zz\r\n{}\r\n0\r\n\r\n", b"2;x=\x00\r\n{}\r\n0\r\n\r\n",
                           b"-1\r\n\r\n", b"2\r\n{}0\r\n\r\n", b"0\r\nX-Trailer: \x00\r\n\r\n"])
        return _request(verb, path, key, rng, body, [("Transfer-Encoding", "chunked")])
    if kind < 0.90:
        length = rng.choice(["-3", "2, 3", "abc", "99999999999999999999999", " 1"])
        return _request(verb, path, key, rng, b"{}", [("Content-Length", length)])
    if kind < 0.95:
        return _request(rng.choice(["PROPFIND", "GETT", "DELETE", "PATCH", "OPTIONS", "TRACE"]),
                        rng.choice([path, "/" + "a" * 9000, "/%zz", "*", "//x"]), key, rng,
                        headers=[("X-Big", "b" * rng.choice([10, 9000]))])
    return rng.choice(HEADS + [b"X" + rng.randbytes(rng.randint(1, 300)) + b"\r\n\r\n"])


def send(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int, str, bytes] | None:
    """(status, content type, body) of the answer, or None when the server closed without one
    or gave none within `timeout`. (Every fuzzed request is complete: one whose body never
    arrives is a slow client, not malformed input.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server refused and closed early; its answer may still be readable
        data = b""
        while True:
            try:
                block = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not block:
                break
            data += block
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return int(lines[0].split(" ", 2)[1]), headers.get("content-type", ""), body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size or b"0", 16)
        if n == 0:
            break
        out, body = out + rest[:n], rest[n + 2:]
    return out


def run(port: int, key: str, requests: int, seed: int = 7) -> Report:
    """`requests` fuzzed requests, one connection each; what they got."""
    rng = random.Random(seed)
    routes = _templates()
    report = Report()
    for _ in range(requests):
        raw = case(routes, key, rng)
        answer = send(port, raw)
        report.requests += 1
        what = raw[:120]
        if answer is None:
            report.statuses["closed"] += 1
            report.forbidden.append(f"no answer to {what!r}")
            continue
        status, ctype, body = answer
        report.statuses[str(status)] += 1
        if status >= 500:
            report.forbidden.append(f"{status} to {what!r}: {body[:200]!r}")
        elif status >= 400 and not ctype.startswith("application/json"):
            report.forbidden.append(f"{status} {ctype} to {what!r}: {body[:200]!r}")
        if key.encode() in body:
            report.forbidden.append(f"the key echoed in the answer to {what!r}")
    return report


def bench(model_dir: str, requests: int = 10_000, seed: int = 7) -> dict:
    """`make bench`'s run: `requests` fuzzed requests against a gateway process serving
    `model_dir`; the key's presence in its log is checked too."""
    import tempfile

    from forecast_gateway.testing.process import GatewayProcess

    with tempfile.TemporaryDirectory(prefix="http-fuzz-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        import_model(data_dir, Path(model_dir))
        with GatewayProcess(data_dir, http=True) as gw:
            key = gw.api_key(RETAILER)
            report = run(gw.http_port, key, requests, seed)
            alive = gw.proc.poll() is None
            leaked = key in gw.log_path.read_text(errors="replace")
    return {**report.as_dict(), "seed": seed, "gateway_alive_after": alive,
            "key_in_log": leaked}


def markdown(r: dict) -> str:
    """The results as a section of docs/benchmarks.md."""
    statuses = ", ".join(f"{s}: {n:,}" for s, n in r["statuses"].items())
    return (f"{r['requests']:,} fuzzed HTTP requests (seed {r['seed']}, raw sockets, one "
            f"connection each): {statuses}. Rule breaks (a 5xx, a non-JSON error, no answer, "
            f"the key in an answer): {r['forbidden_count']}; the key in the gateway's log: "
            f"{'yes' if r['key_in_log'] else 'no'}; the gateway served afterwards: "
            f"{'yes' if r['gateway_alive_after'] else 'no'}.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    result = bench(a.model_dir, a.requests, a.seed)
    print(json.dumps(result, indent=2))
    print(markdown(result))
    return 0 if result["forbidden_count"] == 0 and not result["key_in_log"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
