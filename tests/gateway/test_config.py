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
