"""UploadDataset's size limits, over a real channel: an oversized chunk, a stream that grows past
the file limit without declaring its size, and a declared size over the limit each get
RESOURCE_EXHAUSTED naming the limit, and leave nothing behind (the stored datasets intact). A too
wide or too long table is INVALID_ARGUMENT before it is parsed, and uploads run on threads of
their own, never the control calls'."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError
from forecast_client.config import ClientConfig, RetryPolicy
from forecast_gateway.config import GatewayConfig

KIB = 1024
CHUNK_LIMIT = 64 * KIB
FILE_LIMIT = 256 * KIB


def _csv(min_bytes: int) -> bytes:
    """A valid store-sales CSV of at least `min_bytes` (one series, consecutive days)."""
    lines = ["date,store_nbr,family,sales,onpromotion"]
    size, day = len(lines[0]), 0
    while size < min_bytes:
        lines.append(f"{_date(day)},1,BREAD/BAKERY,{day % 17}.5,0")
        size += len(lines[-1]) + 1
        day += 1
    return ("\n".join(lines) + "\n").encode()


def _date(offset: int) -> str:
    import datetime as dt

    return (dt.date(2000, 1, 1) + dt.timedelta(days=offset)).isoformat()


@pytest.fixture()
def limited(scripted_gateway) -> Iterator[tuple]:
    gw = scripted_gateway(max_upload_chunk_bytes=CHUNK_LIMIT, max_upload_bytes=FILE_LIMIT)
    config = ClientConfig(target=gw.target, api_key=gw.api_key("shop"),
                          retry=RetryPolicy(max_attempts=1))
    with ForecastClient(config) as client:
        yield gw, client


def _refused(call) -> str:
    with pytest.raises(ForecastClientError) as info:
        call()
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    return info.value.details


def _stored_files(gw) -> list[str]:
    raw = gw.server.service.storage.raw_dir("shop")
    return sorted(str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file())


def test_each_upload_limit_is_enforced_and_leaves_nothing_behind(limited) -> None:
    gw, client = limited
    kept = client.upload_dataset("shop", _csv(100 * KIB), filename="ok.csv",
                                 chunk_bytes=CHUNK_LIMIT)
    assert kept.rows > 0
    before = _stored_files(gw)
    assert before and not any(".incoming" in name for name in before)

    # One chunk bigger than the per-message limit.
    details = _refused(lambda: client.upload_dataset("shop", _csv(80 * KIB), filename="a.csv",
                                                     chunk_bytes=80 * KIB))
    assert "an upload chunk" in details and f"{CHUNK_LIMIT:,}" in details

    # A stream of unknown size that grows past the file limit (no size declared up front).
    big = _csv(FILE_LIMIT + 10 * KIB)
    details = _refused(lambda: client.upload_dataset("shop", io.BytesIO(big), filename="b.csv",
                                                     chunk_bytes=CHUNK_LIMIT))
    assert "the uploaded file" in details and f"{FILE_LIMIT:,}" in details

    # A declared size over the limit is refused before any bytes are taken.
    details = _refused(lambda: client.upload_dataset("shop", big, filename="c.csv",
                                                     chunk_bytes=CHUNK_LIMIT))
    assert f"got {len(big):,} bytes" in details

    assert _stored_files(gw) == before, "refused uploads leave no partial files"
    raw = gw.server.service.storage.raw_dir("shop")
    assert [hashlib.sha256((raw / name).read_bytes()).hexdigest() for name in before
            if kept.dataset_id in name] == [kept.sha256], "the stored dataset is unchanged"


def test_whole_upload_limit_defaults_to_one_gib() -> None:
    # The documented default (docs/grpc_api.md); the upload path itself is tested above.
    assert GatewayConfig().max_upload_bytes == 1024 ** 3


def test_a_too_wide_or_too_long_table_is_refused_before_parsing(limited) -> None:
    from forecasting.table_limits import MAX_COLUMNS, MAX_FIELD_BYTES

    gw, client = limited
    before = _stored_files(gw)
    wide = b",".join(b"c%d" % i for i in range(MAX_COLUMNS + 1)) + b"\n" + _csv(100)
    long = _csv(100).replace(b"BREAD/BAKERY", b"B" * (MAX_FIELD_BYTES + 1))
    for data, expected in ((wide, f"at most {MAX_COLUMNS}"), (long, f"{MAX_FIELD_BYTES:,} bytes")):
        with pytest.raises(ForecastClientError) as info:
            client.upload_dataset("shop", data, filename="t.csv")
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in info.value.details
    assert _stored_files(gw) == before


def test_uploads_do_not_take_the_control_threads(scripted_gateway) -> None:
    """With the upload threads all busy, control calls still answer and an upload waits."""
    import threading

    gw = scripted_gateway(upload_threads=1, control_threads=1)
    config = ClientConfig(target=gw.target, api_key=gw.api_key("shop"),
                          retry=RetryPolicy(max_attempts=1))
    release = threading.Event()
    gw.server._upload_pool.submit(release.wait, 30)  # the only upload thread is busy
    done: list[object] = []
    with ForecastClient(config) as client:
        uploading = threading.Thread(
            target=lambda: done.append(client.upload_dataset("shop", _csv(4 * KIB), filename="w.csv")))
        uploading.start()
        try:
            assert client.list_models("shop") == []  # answered by a control thread meanwhile
            uploading.join(0.5)
            assert done == [], "the upload ran on a control thread"
        finally:
            release.set()
            uploading.join(30)
    assert len(done) == 1 and done[0].rows > 0
