"""Seeded fuzzing of every RPC the gateway serves: malformed requests must get a client error,
never INTERNAL or UNKNOWN, and the gateway must still serve afterwards.

Three kinds of request, for every method of every service in the generated code:
- raw wire bytes sent through a generic channel method (no serializer): a valid message
  truncated or with bytes flipped, a string field holding invalid UTF-8, a truncated varint,
  a length prefix past the end, unmatched groups, random bytes;
- well-formed messages filled with hostile values (ids with a trailing newline or a path,
  10 KB strings, page tokens that overflow SQLite, NaN and infinities, unknown enum numbers,
  columns of different lengths, maps with odd keys);
- the cases from issue reports, always included first.

    python -m bench.fuzz_bench --model-dir DIR | --target 127.0.0.1:50051 [--api-key KEY]
                               [--requests 10000] [--seed 7]

`run(target, requests, seed, metadata)` is what the test (2,000 requests) calls; `bench(model_dir)`
is `make bench`'s 10,000 against a gateway process serving the benchmark's model.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import descriptor as d
from google.protobuf import message_factory

GENERATED = "forecast_client._gen.forecastapi.v1"  # every *_pb2 module here with services
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
CALL_TIMEOUT_S = 30.0
RETAILER = "acme"  # the retailer whose key the calls carry
STRINGS = ("", "acme", "acme\n", "ACME", "nobody", "../../etc", "a/b", "v1", "v0", "v99",
           "9" * 20, "-1", "18446744073709551616", "x" * 10_000, "\x00", "é", "\U0001f4a5",
           "file:///etc/passwd", "file://localhost/etc/hosts", "s3://bucket/key", "job-",
           "ds-000000000000", "xgboost", "lstm", "prophet", "data.csv", "data.parquet", " ")
INTS = (0, 1, -1, 2, 16, 17, 1000, 2**31 - 1, -(2**31), 17_394)
INT64S = (*INTS, 2**63 - 1, -(2**63))
DOUBLES = (0.0, -0.0, 0.5, 0.8, 0.99, 1.0, -1.0, 1e308, math.nan, math.inf, -math.inf)
# No valid dataset among them: a stored upload would let a fuzzed Train start real training.
BYTES = (b"", b"date,store_nbr,family,sales\n", b"\xff\xfe\x00", b"PAR1garbage",
         b"date,store_nbr,family,sales\n2017-01-01,x,BREAD,1\n", b"a," * 300 + b"\n")


@dataclass(frozen=True)
class Method:
    """One RPC: its path, request class and streaming shape."""

    path: str
    request: type
    client_streaming: bool
    server_streaming: bool


@dataclass
class Report:
    """What the gateway answered."""

    requests: int = 0
    codes: collections.Counter = field(default_factory=collections.Counter)
    forbidden: list[str] = field(default_factory=list)  # "<method> <code> <details>" of each
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "seconds": round(self.seconds, 2),
                "codes": dict(sorted(self.codes.items())), "forbidden": self.forbidden[:20]}


def methods() -> list[Method]:
    """Every RPC of the generated services that can be imported."""
    import importlib
    import pkgutil

    found: list[Method] = []
    package = importlib.import_module(GENERATED)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{GENERATED}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                found.append(Method(f"/{service.full_name}/{m.name}",
                                    message_factory.GetMessageClass(m.input_type),
                                    m.client_streaming, m.server_streaming))
    return found


# -- hostile but well-formed messages ------------------------------------------------------------

def _scalar(f: d.FieldDescriptor, rng: random.Random):
    t = f.type
    if t == d.FieldDescriptor.TYPE_STRING:
        if f.name == "retailer" and rng.random() < 0.6:
            return RETAILER  # the caller's own: the request gets past the tenant check
        return rng.choice(STRINGS)
    if t == d.FieldDescriptor.TYPE_BYTES:
        return rng.choice(BYTES) if rng.random() < 0.7 else rng.randbytes(rng.randrange(64))
    if t == d.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == d.FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in f.enum_type.values] + [99, -1])
    if t in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return rng.choice(DOUBLES)
    if t in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64):
        return rng.choice(INT64S)
    if t in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return rng.choice((0, 1, 2**32 - 1))
    if t in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return rng.choice((0, 1, 2**64 - 1))
    return rng.choice(INTS)


def fill(message, rng: random.Random, depth: int = 0):
    """Set a random subset of `message`'s fields to hostile values; returns it."""
    for f in message.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue
        target = getattr(message, f.name)
        is_map = f.message_type is not None and f.message_type.GetOptions().map_entry
        if is_map:
            key_f, value_f = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            for _ in range(rng.randrange(4)):
                key = _scalar(key_f, rng)
                if value_f.message_type is None:
                    target[key] = _scalar(value_f, rng)
                elif depth < 3:
                    fill(target[key], rng, depth + 1)
        elif f.is_repeated:
            count = rng.choice((0, 1, 2, 3, 16, 50))
            for _ in range(count):
                if f.message_type is None:
                    target.append(_scalar(f, rng))
                elif depth < 3:
                    fill(target.add(), rng, depth + 1)
        elif f.message_type is not None:
            if depth < 3:
                fill(target, rng, depth + 1)
                if not target.ListFields():
                    target.SetInParent()
        else:
            try:
                setattr(message, f.name, _scalar(f, rng))
            except ValueError:  # e.g. an unknown number on a closed enum
                pass
    return message


# -- raw wire bytes ------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_numbers(request: type, kind: str) -> list[int]:
    wanted = {"string": (d.FieldDescriptor.TYPE_STRING,),
              "varint": (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_INT64,
                         d.FieldDescriptor.TYPE_BOOL, d.FieldDescriptor.TYPE_ENUM),
              "message": (d.FieldDescriptor.TYPE_MESSAGE,)}[kind]
    return [f.number for f in request.DESCRIPTOR.fields if f.type in wanted] or [1]


def raw_bytes(method: Method, rng: random.Random) -> bytes:
    """Bytes that are (mostly) not a valid serialization of the method's request."""
    valid = fill(method.request(), rng).SerializeToString()
    kind = rng.randrange(8)
    if kind == 0:  # a string field with invalid UTF-8
        number = rng.choice(_field_numbers(method.request, "string"))
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\xfe\xfd"))
        return valid + _varint(number << 3 | 2) + _varint(len(bad)) + bad
    if kind == 1:  # a truncated varint
        number = rng.choice(_field_numbers(method.request, "varint"))
        return valid + _varint(number << 3) + b"\xff" * rng.randrange(1, 11)
    if kind == 2 and valid:  # cut short
        return valid[:rng.randrange(len(valid))] + b"\x0a\x80"
    if kind == 3:  # a length prefix past the end
        number = rng.choice(_field_numbers(method.request, "message"))
        return valid + _varint(number << 3 | 2) + _varint(rng.choice((2**31, 2**40, 100)))
    if kind == 4:  # unmatched group markers, or deep group nesting
        return valid + rng.choice((b"\x0c", b"\x0b" * 200, b"\x0b" * 5 + b"\x0c" * 6))
    if kind == 5 and valid:  # flipped bytes
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 6:  # an invalid wire type (6 and 7 do not exist)
        return valid + bytes([rng.randrange(1, 16) << 3 | rng.choice((6, 7))])
    return rng.randbytes(rng.randrange(1, 200))


# -- the calls -----------------------------------------------------------------------------------

def known_cases(all_methods: Sequence[Method]) -> Iterator[tuple[Method, list, bool]]:
    """The reported cases, for every method: invalid UTF-8, a truncated varint, 'acme\\n' as the
    retailer and a page token that overflows SQLite."""
    for m in all_methods:
        strings = _field_numbers(m.request, "string")
        yield m, [_varint(strings[0] << 3 | 2) + b"\x02\xff\xfe"], True
        yield m, [_varint(_field_numbers(m.request, "varint")[0] << 3) + b"\xff\xff"], True
        fields = m.request.DESCRIPTOR.fields_by_name
        for retailer, page_token in ((RETAILER + "\n", ""), (RETAILER, "9" * 20)):
            message = m.request()
            if "retailer" in fields and fields["retailer"].type == d.FieldDescriptor.TYPE_STRING:
                message.retailer = retailer
            if "page_token" in fields:
                message.page_token = page_token
            if "header" in fields:
                message.header.retailer = retailer
                message.header.filename = "x.csv"
            yield m, [message.SerializeToString()], True


def random_cases(all_methods: Sequence[Method], rng: random.Random) -> Iterator[tuple[Method, list, bool]]:
    """Endless random requests: (method, messages (bytes or protos), sent raw?)."""
    while True:
        m = rng.choice(all_methods)
        raw = rng.random() < 0.5
        count = rng.randrange(1, 4) if m.client_streaming else 1
        if raw:
            yield m, [raw_bytes(m, rng) for _ in range(count)], True
        else:
            yield m, [fill(m.request(), rng) for _ in range(count)], False


def call(channel: grpc.Channel, m: Method, messages: list, raw: bool,
         metadata: Sequence[tuple[str, str]]) -> grpc.StatusCode:
    """Send one request (a stream of `messages` for client-streaming methods)."""
    serializer = None if raw else (lambda msg: msg.SerializeToString())
    kwargs = {"request_serializer": serializer, "response_deserializer": None}
    try:
        if m.client_streaming and m.server_streaming:
            for _ in channel.stream_stream(m.path, **kwargs)(
                    iter(messages), timeout=CALL_TIMEOUT_S, metadata=metadata):
                pass
        elif m.client_streaming:
            channel.stream_unary(m.path, **kwargs)(iter(messages), timeout=CALL_TIMEOUT_S,
                                                   metadata=metadata)
        elif m.server_streaming:
            stream = channel.unary_stream(m.path, **kwargs)(messages[0], timeout=CALL_TIMEOUT_S,
                                                            metadata=metadata)
            for _ in stream:  # a watch of a running job would not end by itself
                stream.cancel()
                break
        else:
            channel.unary_unary(m.path, **kwargs)(messages[0], timeout=CALL_TIMEOUT_S,
                                                  metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def run(target: str, requests: int, seed: int = 7,
        metadata: Sequence[tuple[str, str]] = (),
        metadata_for: dict[str, Sequence[tuple[str, str]]] | None = None,
        skip: Sequence[str] = ()) -> Report:
    """Send `requests` malformed requests (the known cases first) to `target`.

    `metadata` goes with every call (e.g. a retailer's API key); `metadata_for` overrides it per
    service name (e.g. an admin key for the admin service). Methods whose path contains one of
    `skip` are left out."""
    rng = random.Random(seed)
    all_methods = [m for m in methods() if not any(s in m.path for s in skip)]
    report = Report()
    started = time.perf_counter()
    cases = iter([*known_cases(all_methods)])
    randoms = random_cases(all_methods, rng)
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as channel:
        while report.requests < requests:
            m, messages, raw = next(cases, None) or next(randoms)
            service = m.path.split("/")[1]
            meta = (metadata_for or {}).get(service, metadata)
            code = call(channel, m, messages, raw, meta)
            report.requests += 1
            report.codes[code.name] += 1
            if code in FORBIDDEN:
                shown = [x if isinstance(x, bytes) else x.SerializeToString() for x in messages]
                report.forbidden.append(f"{m.path} {code.name} raw={raw} {shown[0][:80]!r}")
    report.seconds = time.perf_counter() - started
    return report


def import_model(data_dir: Path, artifact: Path, database_url: str = "") -> None:
    """Give RETAILER a live model (`artifact`) and no dataset in a new data dir (and its
    database, default the data dir's SQLite file), so no fuzzed Train can start a real
    training job (it has nothing to train on)."""
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant

    service = ForecastService(GatewayConfig(data_dir=data_dir, database_url=database_url),
                              LocalBackend(training_slots=1))
    try:
        service.models.import_model(Tenant(RETAILER), Path(artifact))
    finally:
        service.close()


def bench(model_dir: str, requests: int = 10_000, seed: int = 7) -> dict:
    """`make bench`'s run: `requests` malformed requests against a gateway process serving
    `model_dir`, with RETAILER's key (an admin key for the admin service)."""
    import tempfile

    from forecast_gateway.testing.process import GatewayProcess

    with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        import_model(data_dir, Path(model_dir))
        with GatewayProcess(data_dir, env={"FORECAST_GATEWAY_LOG_LEVEL": "WARNING"}) as gw:
            report = run(gw.target, requests, seed,
                         metadata=[("authorization", f"Bearer {gw.api_key(RETAILER)}")],
                         metadata_for={"forecastapi.v1.AdminService":
                                       [("authorization", f"Bearer {gw.admin_key()}")]})
            alive = gw.proc.poll() is None
    return {**report.as_dict(), "seed": seed, "gateway_alive_after": alive}


def markdown(r: dict) -> str:
    """The results as a section of docs/benchmarks.md."""
    forbidden = sum(r["codes"].get(code.name, 0) for code in FORBIDDEN)
    return "\n".join([
        (f"{r['requests']:,} malformed requests (seed {r['seed']}) to every RPC in "
         f"{r['seconds']:.0f} s: raw wire bytes through generic channel methods, hostile "
         "messages and the reported cases. Goal: 0 INTERNAL, 0 UNKNOWN, the gateway still "
         f"serving (it was {'serving' if r['gateway_alive_after'] else 'DOWN'}); "
         f"{forbidden} INTERNAL or UNKNOWN."), "",
        "| status | answers |", "| --- | ---: |",
        *(f"| {code} | {count:,} |" for code, count in r["codes"].items()),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="host:port of a running gateway (loopback)")
    where.add_argument("--model-dir", help="start a gateway serving this artifact (as make bench)")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--api-key", default="", help="with --target: sent as 'authorization: Bearer KEY'")
    a = p.parse_args(argv)
    if a.model_dir:
        result = bench(a.model_dir, a.requests, a.seed)
        print(json.dumps(result, indent=2))
        print(markdown(result))
        return 1 if result["forbidden"] else 0
    metadata = [("authorization", f"Bearer {a.api_key}")] if a.api_key else []
    report = run(a.target, a.requests, a.seed, metadata)
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.forbidden else 0


if __name__ == "__main__":
    raise SystemExit(main())
