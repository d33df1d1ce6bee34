"""The Pipeline definition's graph (steps, data dependencies, condition, parameters, the
processing contract and the S3 layout), and upserting and starting it against moto over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from forecast_gateway.backends.sagemaker import pipeline
from forecast_gateway.backends.sagemaker.pipeline import PipelineSettings
from sagemaker_helpers import ROLE

from forecasting.container.env import ProcessingEnv
from forecasting.errors import HyperparameterError, UserError
from forecasting.hyperparameters import SPECS

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/retail-forecast-{}:latest"
PATHS = ProcessingEnv(Path("/opt/ml"))


def get(ref: str) -> dict:
    return {"Get": ref}


def under(area: str, *tail: str) -> dict:
    """The Join the definition uses for s3://b/pfx/<area>/<retailer>/<run>/<tail>."""
    return {"Std:Join": {"On": "/", "Values": [f"s3://forecast-bucket/pfx/{area}",
                                               get("Parameters.Retailer"),
                                               get("Execution.PipelineExecutionId"), *tail]}}


def as_string(parameter: str) -> dict:
    return {"Std:Join": {"On": "", "Values": [get(f"Parameters.{parameter}")]}}


def settings(**overrides) -> PipelineSettings:
    values = {"role_arn": ROLE, "training_image": IMAGE.format("training"),
              "inference_image": IMAGE.format("inference"), "bucket": "forecast-bucket",
              "prefix": "pfx"}
    return PipelineSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(pipeline.definition_json(settings()))


@pytest.fixture(scope="module")
def steps(definition) -> dict:
    return {step["Name"]: step for step in definition["Steps"]}


def test_steps_and_data_dependencies(steps):
    assert {name: step["Type"] for name, step in steps.items()} == {
        "Clean": "Processing", "Train": "Training", "Evaluate": "Processing",
        "BeatsBaseline": "Condition"}
    text = {name: json.dumps(step) for name, step in steps.items()}
    assert "Steps." not in text["Clean"]
    assert "Steps.Clean." in text["Train"] and "Steps.Evaluate" not in text["Train"]
    assert "Steps.Train.ModelArtifacts.S3ModelArtifacts" in text["Evaluate"]
    assert "Steps.Clean.ProcessingOutputConfig.Outputs['test']" in text["Evaluate"]
    assert "Steps.Evaluate.PropertyFiles.EvaluationReport" in text["BeatsBaseline"]


def test_parameters_and_their_defaults_come_from_the_library(definition):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert list(params) == list(pipeline.PARAMETER_NAMES)
    assert params["Retailer"] == {"Name": "Retailer", "Type": "String"}
    assert params["InputDataUri"] == {"Name": "InputDataUri", "Type": "String"}
    assert params["ModelKind"]["EnumValues"] == ["xgboost", "lstm", "hybrid"]
    assert params["ModelKind"]["DefaultValue"] == SPECS["model_kind"].default
    for name, hp in pipeline.HYPERPARAMETER_PARAMETERS.items():
        kind = {"int": "Integer", "float": "Float"}[SPECS[hp].kind]
        assert params[name] == {"Name": name, "Type": kind, "DefaultValue": SPECS[hp].default}


def test_clean_honours_the_processing_contract(steps):
    args = steps["Clean"]["Arguments"]
    assert args["AppSpecification"] == {"ImageUri": IMAGE.format("training"),
                                         "ContainerEntrypoint": ["clean"],
                                         "ContainerArguments": ["--horizon",
                                                                as_string("Horizon")]}
    (raw,) = args["ProcessingInputs"]
    assert raw["S3Input"]["S3Uri"] == get("Parameters.InputDataUri")
    assert raw["S3Input"]["LocalPath"] == str(PATHS.raw_dir) == "/opt/ml/processing/input/raw"
    outputs = {o["OutputName"]: o["S3Output"] for o in args["ProcessingOutputConfig"]["Outputs"]}
    for split in ("train", "validation", "test"):
        assert outputs[split]["LocalPath"] == f"/opt/ml/processing/output/{split}"
        assert outputs[split]["S3Uri"] == under("processed", split)
    assert outputs["report"] == {**outputs["report"], "LocalPath": str(PATHS.report_dir),
                                 "S3Uri": under("processed")}
    assert args["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert args["RoleArn"] == ROLE


def test_train_reads_the_processed_splits_and_writes_under_models(steps):
    args = steps["Train"]["Arguments"]
    assert args["AlgorithmSpecification"]["TrainingImage"] == IMAGE.format("training")
    assert args["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    names = {d["Name"] for d in args["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"xgboost.test.rmsle", "baseline.test.rmsle"} <= names
    channels = {c["ChannelName"]: c for c in args["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    for name, channel in channels.items():
        assert channel["ContentType"] == "application/x-parquet"
        assert channel["DataSource"]["S3DataSource"]["S3Uri"] == get(
            f"Steps.Clean.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri")
    assert args["OutputDataConfig"]["S3OutputPath"] == {"Std:Join": {
        "On": "/", "Values": ["s3://forecast-bucket/pfx/models", get("Parameters.Retailer")]}}
    assert args["HyperParameters"]["model_kind"] == get("Parameters.ModelKind")
    for name, hp in pipeline.HYPERPARAMETER_PARAMETERS.items():
        assert args["HyperParameters"][hp] == as_string(name)
    assert set(args["HyperParameters"]) <= set(SPECS)


def test_evaluate_reads_the_model_and_test_split_and_reports_a_property_file(steps):
    step = steps["Evaluate"]
    args = step["Arguments"]
    assert args["AppSpecification"]["ContainerEntrypoint"] == ["evaluate"]
    inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
    assert inputs["model"]["LocalPath"] == str(PATHS.model_input_dir)
    assert inputs["test"]["LocalPath"] == str(PATHS.test_input_dir)
    (out,) = args["ProcessingOutputConfig"]["Outputs"]
    assert out["OutputName"] == "evaluation"
    assert out["S3Output"]["LocalPath"] == str(PATHS.evaluation_dir)
    assert out["S3Output"]["S3Uri"] == under("evaluation")
    assert step["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport",
                                      "OutputName": "evaluation", "FilePath": "evaluation.json"}]


def test_condition_registers_a_better_model_or_fails_naming_both_numbers(steps):
    args = steps["BeatsBaseline"]["Arguments"]

    def json_get(path: str) -> dict:
        return {"Std:JsonGet": {"PropertyFile": get(
            "Steps.Evaluate.PropertyFiles.EvaluationReport"), "Path": path}}

    assert args["Conditions"] == [{"Type": "LessThan",
                                   "LeftValue": json_get("summary.model_rmsle"),
                                   "RightValue": json_get("summary.baseline_rmsle")}]
    register, package = args["IfSteps"]
    assert register["Type"] == "Model" and register["Name"] == pipeline.REGISTER_STEP
    assert register["Arguments"]["PrimaryContainer"]["Image"] == IMAGE.format("inference")
    assert register["Arguments"]["PrimaryContainer"]["ModelDataUrl"] == get(
        "Steps.Train.ModelArtifacts.S3ModelArtifacts")
    # The Model Registry: a package in the group the gateway names, pending approval, with the
    # evaluation report the Evaluate step wrote as its metrics.
    assert package["Type"] == "RegisterModel" and package["Name"] == pipeline.PACKAGE_STEP
    request = package["Arguments"]
    assert request["ModelPackageGroupName"] == get("Parameters.ModelPackageGroup")
    assert request["ModelApprovalStatus"] == get("Parameters.ModelApprovalStatus")
    (container,) = request["InferenceSpecification"]["Containers"]
    assert container["Image"] == IMAGE.format("inference")
    assert container["ModelDataUrl"] == get("Steps.Train.ModelArtifacts.S3ModelArtifacts")
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json", "S3Uri": under("evaluation", "evaluation.json")}
    assert request["CustomerMetadataProperties"] == {
        "retailer": get("Parameters.Retailer"), "run": get("Execution.PipelineExecutionId")}
    (fail,) = args["ElseSteps"]
    assert fail["Type"] == "Fail" and fail["Name"] == "WorseThanBaseline"
    message = fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert json_get("summary.model_rmsle") in message
    assert json_get("summary.baseline_rmsle") in message


def test_settings_are_checked():
    with pytest.raises(UserError, match="pipeline setting 'bucket'"):
        settings(bucket="s3://forecast-bucket")
    with pytest.raises(UserError, match="'role_arn' must not be empty"):
        settings(role_arn=" ")
    with pytest.raises(UserError, match="'volume_size_gb' must be >= 1"):
        settings(volume_size_gb=0)


def test_execution_parameters_are_checked_by_the_hyperparameter_schema():
    params = pipeline.execution_parameters("acme", "s3://b/raw/acme/d1.csv", "hybrid",
                                           {"num_round": "40", "eta": 0.05})
    assert params == [{"Name": "Retailer", "Value": "acme"},
                      {"Name": "InputDataUri", "Value": "s3://b/raw/acme/d1.csv"},
                      {"Name": "ModelKind", "Value": "hybrid"},
                      {"Name": "NumRound", "Value": "40"}, {"Name": "Eta", "Value": "0.05"}]
    with pytest.raises(HyperparameterError, match="'lambda': is not a parameter of the pipeline"):
        pipeline.execution_parameters("acme", "s3://b/k", hyperparameters={"lambda": "2"})
    with pytest.raises(HyperparameterError, match="'bogus': unknown hyperparameter"):
        pipeline.execution_parameters("acme", "s3://b/k", hyperparameters={"bogus": "2"})
    with pytest.raises(HyperparameterError, match="'num_round': must be an integer"):
        pipeline.execution_parameters("acme", "s3://b/k", hyperparameters={"num_round": "x"})
    with pytest.raises(HyperparameterError, match="'model_kind'"):
        pipeline.execution_parameters("acme", "s3://b/k", model_kind="prophet")
    with pytest.raises(UserError, match="input URI must be an s3:// URI"):
        pipeline.execution_parameters("acme", "/tmp/data.csv")


def test_upsert_creates_then_updates_and_an_execution_starts(moto_clients, recorder):
    sagemaker = moto_clients.sagemaker
    first = pipeline.definition_json(settings())
    arn = pipeline.upsert_pipeline(sagemaker, settings(), first)
    assert arn.endswith(":pipeline/retail-forecast")
    second = pipeline.definition_json(settings(training_instance_type="ml.c5.2xlarge"))
    assert pipeline.upsert_pipeline(sagemaker, settings(), second) == arn
    assert recorder.operations().count("CreatePipeline") == 1
    assert recorder.operations().count("UpdatePipeline") == 1
    stored = json.loads(sagemaker.describe_pipeline(PipelineName="retail-forecast")
                        ["PipelineDefinition"])
    train = next(s for s in stored["Steps"] if s["Name"] == "Train")
    assert train["Arguments"]["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"

    execution = pipeline.start_execution(sagemaker, "retail-forecast", retailer="acme",
                                         input_uri="s3://forecast-bucket/pfx/raw/acme/d1.csv",
                                         hyperparameters={"num_round": 50},
                                         display_name="acme-job-1")
    assert execution.startswith(arn + "/execution/")
    sent = recorder.params("StartPipelineExecution")
    assert sent["PipelineParameters"][-1] == {"Name": "NumRound", "Value": "50"}
    assert sent["PipelineExecutionDisplayName"] == "acme-job-1"


def test_forecast_pipeline_writes_the_definition(definition, tmp_path):
    """Settings from flags and, where a flag is missing, the gateway's variables."""
    out = tmp_path / "pipeline.json"
    args = ["--training-image", IMAGE.format("training"), "--inference-image",
            IMAGE.format("inference"), "--bucket", "forecast-bucket", "--output", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECAST_GATEWAY_")}
    gateway_env = {**env, "FORECAST_GATEWAY_SAGEMAKER_ROLE_ARN": ROLE,
                   "FORECAST_GATEWAY_SAGEMAKER_PREFIX": "pfx",
                   "FORECAST_GATEWAY_SAGEMAKER_BUCKET": "ignored-bucket"}
    script = str(Path(sys.executable).parent / "forecast-pipeline")
    result = subprocess.run([script, *args], capture_output=True, text=True, timeout=120,
                            check=False, env=gateway_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == definition
    missing = subprocess.run([script, "--bucket", "b-1"], capture_output=True, text=True,
                             timeout=120, check=False, env=env)
    assert missing.returncode == 2
    assert "the following arguments are required: --role-arn" in missing.stderr


def resolve(value, parameters: dict[str, str]):
    """A step's arguments as the Pipelines service sends them in one run: parameters, the
    execution id and other steps' properties replaced by values, joins joined."""
    if isinstance(value, list):
        return [resolve(v, parameters) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        ref = value["Get"]
        if ref.startswith("Parameters."):
            return parameters[ref.removeprefix("Parameters.")]
        if ref == "Execution.PipelineExecutionId":
            return "k3m9x2exec"
        return "s3://forecast-bucket/pfx/from-another-step"   # every step property used is a URI
    if set(value) == {"Std:Join"}:
        join = value["Std:Join"]
        return join["On"].join(str(resolve(v, parameters)) for v in join["Values"])
    return {k: resolve(v, parameters) for k, v in value.items()}


@pytest.mark.parametrize("step_type, operation, name_field", [
    ("Processing", "CreateProcessingJob", "ProcessingJobName"),
    ("Training", "CreateTrainingJob", "TrainingJobName"),
    ("Model", "CreateModel", "ModelName"),
    ("RegisterModel", "CreateModelPackage", "ModelPackageGroupName"),
])
def test_each_job_request_passes_the_service_model(definition, step_type, operation,
                                                   name_field):
    """What the service sends for each job step (botocore's validation, then the service
    model's enums, patterns and bounds)."""
    from botocore.validate import validate_parameters
    from forecast_gateway.backends.sagemaker import validation
    from sagemaker_helpers import SESSION

    parameters = {p["Name"]: str(p.get("DefaultValue", "")) for p in definition["Parameters"]}
    parameters.update(Retailer="acme_co", InputDataUri="s3://forecast-bucket/pfx/raw/acme_co/d.csv")
    steps = [s for s in definition["Steps"] if s["Type"] == step_type] + [
        s for c in definition["Steps"] if c["Type"] == "Condition"
        for s in c["Arguments"]["IfSteps"] if s["Type"] == step_type]
    assert steps
    model = SESSION.client("sagemaker").meta.service_model.operation_model(operation)
    for step in steps:
        request = {**resolve(step["Arguments"], parameters), name_field: "retail-forecast-1"}
        validate_parameters(request, model.input_shape)
        assert validation.check_request(model, request) == []


def test_a_pipeline_for_local_mode_leaves_the_package_step_out():
    """LocalPipelineSession has no executor for RegisterModel steps: its pipeline keeps the
    CreateModel step and drops the ModelPackage step and its two parameters."""
    import boto3
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    session = LocalPipelineSession(boto_session=boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"),
        default_bucket="forecast-bucket")
    local = json.loads(pipeline.build_pipeline(settings(
        processing_instance_type="local", training_instance_type="local"), session).definition())
    (check,) = [s for s in local["Steps"] if s["Type"] == "Condition"]
    assert [s["Name"] for s in check["Arguments"]["IfSteps"]] == [pipeline.REGISTER_STEP]
    names = [p["Name"] for p in local["Parameters"]]
    assert pipeline.MODEL_PACKAGE_GROUP not in names and "ModelApprovalStatus" not in names
