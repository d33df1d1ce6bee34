"""Configuration is read once from flags and FORECAST_GATEWAY_* variables, docker settings too."""

from __future__ import annotations

import pytest
from forecast_gateway.backends.docker_backend import DockerSettings
from forecast_gateway.config import load_config


def test_docker_settings_come_from_gateway_variables() -> None:
    config = load_config([], {"FORECAST_GATEWAY_DOCKER_TRAINING_IMAGE": "train:1",
                              "FORECAST_GATEWAY_DOCKER_INFERENCE_IMAGE": "serve:1",
                              "FORECAST_GATEWAY_DOCKER_DRAIN_S": "1",
                              "FORECAST_GATEWAY_DOCKER_MAX_BODY_BYTES": "4096"})
    settings = DockerSettings.from_config(config)
    assert (settings.training_image, settings.inference_image) == ("train:1", "serve:1")
    assert (settings.drain_s, settings.max_body_bytes) == (1.0, 4096)


def test_docker_body_limit_stays_under_the_contract() -> None:
    config = load_config(["--docker-max-body-bytes", str(64 * 1024 * 1024)], {})
    assert DockerSettings.from_config(config).max_body_bytes == 6 * 1024 * 1024


def test_a_flag_wins_over_its_variable() -> None:
    config = load_config(["--docker-drain-s", "2"], {"FORECAST_GATEWAY_DOCKER_DRAIN_S": "9"})
    assert config.docker_drain_s == 2.0


@pytest.mark.parametrize("name", ["FORECAST_GATEWAY_DOCKER_DRAIN_S",
                                  "FORECAST_GATEWAY_DOCKER_PING_TIMEOUT_S"])
def test_non_positive_docker_timeouts_are_rejected_at_start(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config([], {name: "0"})
    assert exc.value.code == 2
    field = name.removeprefix("FORECAST_GATEWAY_").lower()
    assert f"{field} must be positive" in capsys.readouterr().err


def test_a_bad_setting_is_one_line_naming_it_and_help_names_keys() -> None:
    """The real command, as an operator runs it: the reason, not 60 lines of usage."""
    import subprocess
    import sys

    for args, reason in ((["--backend", "sagemaker"],
                          "the sagemaker backend needs --sagemaker-bucket"),
                         (["--port", "abc"], "--port: expected an integer, got 'abc'"),
                         (["--http-keepalive-s", "0"], "http_keepalive_s must be positive")):
        proc = subprocess.run([sys.executable, "-m", "forecast_gateway.main", *args],
                              check=False, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            f"forecast-gateway: error: {reason} (--help lists every flag)"], proc.stderr
    help_text = subprocess.run([sys.executable, "-m", "forecast_gateway.main", "--help"],
                               check=True, capture_output=True, text=True, timeout=60).stdout
    assert "forecast-gateway keys --help" in help_text


def test_each_setting_is_declared_once_with_help_and_listed_by_section() -> None:
    """Flag, variable, default and help all come from the one declaration; --help groups the
    flags by section (the gateway's own, then each backend's)."""
    from dataclasses import fields

    from forecast_gateway.config import SECTIONS, GatewayConfig, build_parser

    names = [f.name for f in fields(GatewayConfig)]
    assert len(names) == len(set(names))
    assert all(f.metadata.get("help") for f in fields(GatewayConfig)), "a setting without help"
    groups = {g.title: [a.dest for a in g._group_actions] for g in build_parser()._action_groups}
    assert [s.TITLE for s in SECTIONS] == [t for t in groups if t not in ("options",
                                                                         "positional arguments")]
    assert "sagemaker_bucket" in groups["sagemaker backend (--backend sagemaker)"]
    assert "docker_cli" in groups["docker backend (--backend docker)"]
    assert "port" in groups["gateway"]
    assert sorted(d for ds in groups.values() for d in ds if d != "help") == sorted(names)


def test_keys_and_the_pipeline_read_settings_through_the_gateways_reader(tmp_path,
                                                                         monkeypatch) -> None:
    import io

    from forecast_gateway.auth import command
    from forecast_gateway.backends.sagemaker import pipeline_command
    from forecast_gateway.config import from_environ

    monkeypatch.setenv("FORECAST_GATEWAY_DATABASE_URL", "mysql://nope")
    err = io.StringIO()
    assert command.main(["list"], out=io.StringIO(), err=err) == 2
    assert err.getvalue() == ("forecast-gateway keys: error: database_url must be "
                              "postgresql://... or sqlite:///PATH\n")
    monkeypatch.delenv("FORECAST_GATEWAY_DATABASE_URL")
    monkeypatch.setenv("FORECAST_GATEWAY_DATA_DIR", str(tmp_path / "var"))
    assert command.main(["create-retailer", "acme", "--print"], out=io.StringIO(),
                        err=io.StringIO()) == 0
    assert (tmp_path / "var" / "registry.sqlite3").exists()
    monkeypatch.setenv("FORECAST_GATEWAY_SAGEMAKER_INSTANCE_COUNT", "3")
    assert from_environ("sagemaker_instance_count") == 3
    monkeypatch.setenv("FORECAST_GATEWAY_SAGEMAKER_INSTANCE_COUNT", "0")
    with pytest.raises(ValueError, match="sagemaker_instance_count must be positive"):
        from_environ("sagemaker_instance_count")
    with pytest.raises(SystemExit) as exc:
        pipeline_command.main(["--role-arn", "arn:aws:iam::1:role/r", "--bucket", "b"])
    assert exc.value.code == 2
