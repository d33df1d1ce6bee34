"""`--allow-file-uris` is confined to `<file_uri_root>/<retailer>/`: a retailer trains on its own
files only, and every other path gets the same answer whether it exists or not, with nothing of
the file in it."""

from __future__ import annotations

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError
from forecast_gateway.config import GatewayConfig

from forecasting.table_limits import MAX_COLUMNS

HISTORY = b"date,store_nbr,family,sales\n2017-01-01,1,BREAD,1\n2017-01-02,1,BREAD,2\n"
SECRET_HEADER = b"secret_col_a,secret_col_b\n1,2\n"


@pytest.fixture()
def confined(scripted_gateway, tmp_path):
    root = tmp_path / "files"
    (root / "acme").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "acme" / "history.csv").write_bytes(HISTORY)
    (root / "other" / "history.csv").write_bytes(SECRET_HEADER)
    (tmp_path / "outside.csv").write_bytes(SECRET_HEADER)
    (root / "acme" / "link.csv").symlink_to(root / "other" / "history.csv")
    (root / "acme" / "wide.csv").write_bytes(b",".join([b"c"] * (MAX_COLUMNS + 1)) + b"\n")
    gw = scripted_gateway(allow_file_uris=True, file_uri_root=root)
    with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as client:
        yield client, root, tmp_path


def _refused(client: ForecastClient, uri: str) -> str:
    with pytest.raises(ForecastClientError) as info:
        client.train("acme", data_uri=uri)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return info.value.details


def test_a_retailer_trains_on_its_own_files(confined) -> None:
    client, root, _ = confined
    job = client.train("acme", data_uri=f"file://{root}/acme/history.csv")
    assert job.retailer == "acme" and job.dataset_id.startswith("ds-")


def test_other_paths_get_one_answer_that_reveals_nothing(confined) -> None:
    client, root, tmp = confined
    uris = [
        f"file://{root}/other/history.csv",          # another retailer's file
        f"file://{root}/acme/../other/history.csv",  # the same, by traversal
        f"file://{root}/acme/link.csv",              # the same, by a symbolic link
        f"file://{tmp}/outside.csv",                 # exists, outside the root
        f"file://{tmp}/missing.csv",                 # does not exist
        f"file://{root}/acme/missing.csv",           # does not exist, inside
        "file:///etc/hostname",                      # not a table
        f"file://otherhost{root}/acme/history.csv",  # a remote host
        "file:///etc/passwd%00.csv",                 # a NUL byte (no file is named so)
        f"file://{root}/acme/history.csv%00.csv",    # the same, inside
    ]
    answers = {_refused(client, uri) for uri in uris}
    assert len(answers) == 1, answers
    (answer,) = answers
    assert "data_uri" in answer and "secret_col" not in answer and "outside" not in answer


def test_a_wide_file_is_refused_by_the_table_limits(confined) -> None:
    client, root, _ = confined
    assert f"at most {MAX_COLUMNS}" in _refused(client, f"file://{root}/acme/wide.csv")


def test_file_uris_need_a_root() -> None:
    with pytest.raises(ValueError, match="file_uri_root"):
        GatewayConfig(allow_file_uris=True)
