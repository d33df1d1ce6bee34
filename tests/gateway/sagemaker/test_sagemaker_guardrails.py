"""Canary deploys with rollback (`--sagemaker-traffic-shift`): the rollback alarms on moto's
CloudWatch, and a real gateway whose SageMaker backend speaks to Stubbers (moto answers
UpdateEndpoint with HTTP 500): a canary that finishes makes the new version live, a rollback
keeps the old one live and says which alarm fired. Every request is checked against the service
model (`validation.enforce`)."""

from __future__ import annotations

import shutil

import grpc
import pytest
from botocore.stub import Stubber
from forecast_gateway.backends.sagemaker.aws import AwsClients
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.backends.sagemaker.endpoints import VARIANT, deployment
from forecast_gateway.backends.sagemaker.guardrails import (
    Guardrails,
    GuardrailSettings,
    alarm_names,
)
from forecast_gateway.config import GatewayConfig
from forecast_gateway.dataplane import Tenant
from forecast_gateway.domain import ModelRef
from moto_server import MotoServer
from sagemaker_helpers import (
    GOLDEN_ARTIFACT,
    ROLE,
    Recorder,
    client,
    endpoint_description,
    settings,
    stub_first_deploy,
    stub_model_and_config,
)

CANARY = GuardrailSettings("canary", percent=25, wait_s=0, bake_s=0, alarm_5xx=3,
                           alarm_latency_ms=1500)
EXPECTED_CONFIG = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 0,
                                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
        "TerminationWaitInSeconds": 0},
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "forecast-acme-5xx"},
                                             {"AlarmName": "forecast-acme-model-latency"}]}}


def test_the_rollback_alarms_watch_the_endpoints_5xx_and_latency(
        moto_server: MotoServer, recorder: Recorder) -> None:
    cloudwatch = client("cloudwatch", moto_server, recorder)
    guardrails = Guardrails(cloudwatch, CANARY)
    assert guardrails.prepare("forecast-acme", VARIANT, "acme") == EXPECTED_CONFIG
    guardrails.prepare("forecast-acme", VARIANT, "acme")  # an upsert: no second pair
    found = cloudwatch.describe_alarms(AlarmNames=alarm_names("forecast-acme"))["MetricAlarms"]
    alarms = {a["AlarmName"]: a for a in found}
    assert sorted(alarms) == ["forecast-acme-5xx", "forecast-acme-model-latency"]
    errors, latency = alarms["forecast-acme-5xx"], alarms["forecast-acme-model-latency"]
    dimensions = [{"Name": "EndpointName", "Value": "forecast-acme"},
                  {"Name": "VariantName", "Value": "AllTraffic"}]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"],
            errors["Threshold"], errors["ComparisonOperator"], errors["Period"]) == (
        "AWS/SageMaker", "Invocation5XXErrors", "Sum", 3.0, "GreaterThanOrEqualToThreshold", 60)
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == (
        "ModelLatency", "p99", 1_500_000.0)   # CloudWatch counts ModelLatency in microseconds
    for alarm in (errors, latency):
        assert alarm["Dimensions"] == dimensions
        assert alarm["TreatMissingData"] == "notBreaching"
    assert recorder.operations().count("PutMetricAlarm") == 4
    assert guardrails.fired("forecast-acme") == ""
    cloudwatch.set_alarm_state(AlarmName="forecast-acme-5xx", StateValue="ALARM",
                               StateReason="Threshold Crossed: 1 datapoint [7.0] >= 3.0")
    assert guardrails.fired("forecast-acme") == (
        "alarm forecast-acme-5xx fired (Threshold Crossed: 1 datapoint [7.0] >= 3.0)")


@pytest.mark.parametrize(("shift", "steps", "planned"), [
    ("all-at-once", 1, 360), ("canary", 2, 660), ("linear", 4, 1260)])
def test_linear_steps_and_the_planned_time(shift: str, steps: int, planned: int) -> None:
    made = GuardrailSettings(shift, percent=25, wait_s=300, bake_s=60)
    assert (made.steps, made.planned_s) == (steps, planned)
    routing = made.deployment_config(["a"])["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"]
    assert ("LinearStepSize" in routing, "CanarySize" in routing) == (
        shift == "linear", shift == "canary")


def test_a_traffic_shift_needs_a_real_time_endpoint_and_sane_sizes() -> None:
    base = {"backend": "sagemaker", "sagemaker_bucket": "forecast-bucket",
            "sagemaker_role_arn": ROLE, "sagemaker_traffic_shift": "canary"}
    with pytest.raises(ValueError, match="serverless endpoints have no instances"):
        GatewayConfig(**base)
    with pytest.raises(ValueError, match="sagemaker_shift_percent must be 1..50"):
        GatewayConfig(**base, sagemaker_endpoint_instance_type="ml.m5.large",
                      sagemaker_shift_percent=60)
    with pytest.raises(ValueError, match="must be empty, all-at-once, canary, linear"):
        GatewayConfig(**{**base, "sagemaker_traffic_shift": "blue"},
                      sagemaker_endpoint_instance_type="ml.m5.large")
    with pytest.raises(ValueError, match="local mode replaces its one container"):
        GatewayConfig(**base, sagemaker_endpoint_instance_type="ml.m5.large",
                      sagemaker_local_mode=True)
    made = GatewayConfig(**base, sagemaker_endpoint_instance_type="ml.m5.large")
    assert made.sagemaker_traffic_shift == "canary"


@pytest.fixture()
def guarded(moto_server: MotoServer, recorder: Recorder, bucket: str, gateway_over, tmp_path):
    """A gateway over a SageMaker backend with canary updates: S3 on moto, sagemaker and
    cloudwatch on Stubbers; retailer acme has v1 live on its endpoint and v2 registered.
    Yields (gateway, sagemaker stubber, cloudwatch stubber, v1's and v2's deployments)."""
    sagemaker = client("sagemaker", None, recorder)
    cloudwatch = client("cloudwatch", None, recorder)
    clients = AwsClients(s3=client("s3", moto_server, recorder), sagemaker=sagemaker,
                         runtime=client("sagemaker-runtime", None, recorder),
                         cloudwatch=cloudwatch)
    backend = SageMakerBackend(settings(bucket, endpoint_instance_type="ml.m5.large",
                                        guardrails=CANARY), clients, first_pause_s=0.01)
    sources = {v: tmp_path / "src" / v for v in ("v1", "v2")}
    targets = {}
    for version, source in sources.items():
        shutil.copytree(GOLDEN_ARTIFACT, source)
        if version == "v2":  # another artifact: another model.tar.gz, another config
            (source / "evaluation.json").write_text("{}")
        # The gateway's copy has the same files, so the same model.tar.gz and names.
        url = backend.model_data_url(ModelRef("acme", version, source))
        targets[version] = deployment("acme", version, url)
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cw:
        gateway = gateway_over(backend)
        stub_first_deploy(sm, targets["v1"].endpoint, targets["v1"].config)
        models = gateway.server.service.models
        models.import_model(Tenant("acme"), sources["v1"])
        models.import_model(Tenant("acme"), sources["v2"], make_live=False)
        yield gateway, sm, cw, targets["v1"], targets["v2"]
        sm.assert_no_pending_responses()
        cw.assert_no_pending_responses()


def _stub_update(sm, cw, old, new) -> None:
    """The answers up to UpdateEndpoint: models and config made, the endpoint on the old
    config, both alarms put; the UpdateEndpoint must carry the canary's DeploymentConfig."""
    stub_model_and_config(sm)
    sm.add_response("describe_endpoint", endpoint_description(old.endpoint, old.config,
                                                              "InService"))
    for _ in range(2):
        cw.add_response("put_metric_alarm", {})
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/e"},
                    {"EndpointName": old.endpoint, "EndpointConfigName": new.config,
                     "DeploymentConfig": EXPECTED_CONFIG})


def _live(client, retailer: str = "acme") -> str:
    return next(m.version for m in client.list_models(retailer) if m.live)


def test_a_finished_canary_makes_the_new_version_live(guarded, recorder: Recorder) -> None:
    from forecast_client import ForecastClient

    gateway, sm, cw, old, new = guarded
    _stub_update(sm, cw, old, new)
    sm.add_response("describe_endpoint", endpoint_description(
        old.endpoint, old.config, "Updating",
        PendingDeploymentSummary={"EndpointConfigName": new.config}))
    sm.add_response("describe_endpoint", endpoint_description(old.endpoint, new.config,
                                                              "InService"))
    with ForecastClient(target=gateway.target, api_key=gateway.api_key("acme")) as client:
        assert client.set_live_model("acme", "v2").live
        assert _live(client) == "v2"
    alarms = [p for op, p in recorder.calls if op == "PutMetricAlarm"]
    assert [a["MetricName"] for a in alarms] == ["Invocation5XXErrors", "ModelLatency"]
    assert {a["Dimensions"][0]["Value"] for a in alarms} == {old.endpoint}


def test_a_rollback_keeps_the_old_version_live_and_names_the_alarm(guarded) -> None:
    from forecast_client import ForecastClient, ForecastClientError

    gateway, sm, cw, old, new = guarded
    _stub_update(sm, cw, old, new)
    for status in ("Updating", "RollingBack", "InService"):
        sm.add_response("describe_endpoint", endpoint_description(old.endpoint, old.config,
                                                                  status))
    cw.add_response("describe_alarms", {"MetricAlarms": [
        {"AlarmName": f"{old.endpoint}-5xx", "StateValue": "ALARM",
         "StateReason": "Threshold Crossed: 1 datapoint [12.0] >= 3.0"},
        {"AlarmName": f"{old.endpoint}-model-latency", "StateValue": "OK"}]},
        {"AlarmNames": alarm_names(old.endpoint)})
    with ForecastClient(target=gateway.target, api_key=gateway.api_key("acme")) as client:
        with pytest.raises(ForecastClientError) as caught:
            client.set_live_model("acme", "v2")
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert (f"did not take {new.config}: alarm {old.endpoint}-5xx fired (Threshold Crossed: "
                f"1 datapoint [12.0] >= 3.0); it still serves {old.config}") in caught.value.details
        assert _live(client) == "v1"


@pytest.mark.parametrize(("flags", "says"), [
    (["--sagemaker-traffic-shift", "canary"], "serverless endpoints have no instances"),
    (["--sagemaker-traffic-shift", "linear", "--sagemaker-endpoint-instance-type", "ml.m5.large",
      "--sagemaker-shift-wait-s", "5000"], "sagemaker_shift_wait_s must be 0..3600 seconds"),
    (["--sagemaker-alarm-latency-ms", "fast"], "--sagemaker-alarm-latency-ms: expected an integer"),
])
def test_the_gateway_refuses_a_bad_rollout_setting_in_one_line(tmp_path, flags, says) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "forecast_gateway.main", "--backend",
                           "sagemaker", "--sagemaker-bucket", "forecast-bucket",
                           "--sagemaker-role-arn", ROLE, "--data-dir", str(tmp_path), "--port",
                           "0", "--no-auth", *flags],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
