"""`forecast-gateway keys ...`, the offline admin command, as a real process on a data dir, and
what the store keeps: a key works against a gateway on that dir and stops when revoked."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from forecast_client import ClientConfig, ForecastClient, ForecastClientError, RetryPolicy
from forecast_gateway.auth import command
from forecast_gateway.testing.process import GatewayProcess
from store_engine import database_dump, database_url_for


def keys(data_dir: Path, *args: str, process: bool = False) -> subprocess.CompletedProcess:
    """Run `forecast-gateway keys --data-dir DATA_DIR ARGS`: as a real process, or in this one
    (the same `main`, much faster on a busy machine)."""
    url = database_url_for(data_dir)
    argv = ["keys", "--data-dir", str(data_dir), *(["--database-url", url] if url else []), *args]
    if process:
        return subprocess.run([sys.executable, "-m", "forecast_gateway.main", *argv],
                              capture_output=True, text=True, timeout=60, check=False)
    out, err = io.StringIO(), io.StringIO()
    try:
        code = command.main(argv[1:], out, err)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def test_offline_key_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    created = keys(data_dir, "create-retailer", "acme", "--name", "first", process=True)
    assert created.returncode == 0, created.stderr
    key = next(line for line in created.stdout.splitlines() if line.startswith("fgk_"))
    assert f"export FORECAST_API_KEY={key}" in created.stdout
    again = keys(data_dir, "create-retailer", "acme")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    second = keys(data_dir, "create-retailer", "acme", "--exist-ok", "--print", "--name", "ci")
    assert second.returncode == 0 and second.stdout.startswith("fgk_") \
        and second.stdout.count("\n") == 1
    admin = keys(data_dir, "issue", "--admin", "--print")
    assert admin.returncode == 0
    unknown = keys(data_dir, "issue", "ghost")
    assert unknown.returncode == 1 and "'ghost' not found" in unknown.stderr
    bad = keys(data_dir, "create-retailer", "Not A Retailer")
    assert bad.returncode == 1 and "not a valid retailer id" in bad.stderr
    assert keys(data_dir, "revoke").returncode == 2  # usage

    listed = [json.loads(line) for line in keys(data_dir, "list", "--json").stdout.splitlines()]
    assert [(k["role"], k["retailer"], k["name"]) for k in listed] == [
        ("retailer", "acme", "first"), ("retailer", "acme", "ci"), ("admin", "", "")]
    # Only salted hashes are stored: no secret appears anywhere in the database.
    dump = database_dump(data_dir)
    for full in (key, second.stdout.strip(), admin.stdout.strip()):
        assert full.split("_", 2)[2] not in dump

    # The key works against a gateway on that data dir; revoked offline, it stops working
    # once the gateway's cache lapses (0 s here).
    env = {"FORECAST_GATEWAY_AUTH_CACHE_S": "0"}
    with GatewayProcess(data_dir, env) as gw, ForecastClient(ClientConfig(
            target=gw.target, api_key=key, retry=RetryPolicy(max_attempts=1))) as client:
        assert client.list_models("acme") == []
        first_id = listed[0]["key_id"]
        revoked = keys(data_dir, "revoke", first_id, process=True)
        assert revoked.returncode == 0 and first_id in revoked.stdout
        with pytest.raises(ForecastClientError) as info:
            client.list_models("acme")
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    still = keys(data_dir, "list", "--retailer", "acme")
    assert first_id not in still.stdout and keys(data_dir, "list", "--all").stdout.count("revoked") == 1


def test_gateway_without_subcommand_still_serves_and_no_auth_needs_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    refused = subprocess.run([sys.executable, "-m", "forecast_gateway.main", "--no-auth",
                              "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "loopback" in refused.stderr
    with GatewayProcess(tmp_path / "data", args=("--no-auth",)) as gw:
        with ForecastClient(ClientConfig(target=gw.target, api_key=None)) as client, \
                pytest.raises(ForecastClientError) as info:
            client.list_models("anyone")
        assert info.value.code == grpc.StatusCode.NOT_FOUND  # not UNAUTHENTICATED: auth is off
        assert "authentication is OFF" in gw.log()
