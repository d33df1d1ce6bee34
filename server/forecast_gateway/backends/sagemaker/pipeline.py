"""The SageMaker Pipeline: Clean → Train → Evaluate → (beats the baseline?) → Register | Fail.

    Clean     ProcessingStep, the training image's ``clean``: raw upload → train/validation/test
              splits and the cleaning report under processed/<retailer>/<run>/
    Train     TrainingStep, the training image's ``train`` on the train (+ validation) split;
              SageMaker writes models/<retailer>/<job>/output/model.tar.gz
    Evaluate  ProcessingStep, ``evaluate``: model.tar.gz + the test split → evaluation.json
              under evaluation/<retailer>/<run>/ (a PropertyFile)
    BeatsBaseline      ConditionStep: the model's test RMSLE < the seasonal-naive baseline's
    RegisterModel      ModelStep (CreateModel: the inference image + model.tar.gz)   if it does
    ModelPackage       ModelStep (CreateModelPackage in the retailer's model package group,
                       PendingManualApproval, the evaluation as metrics: pipeline_registry)
    WorseThanBaseline  FailStep naming both numbers                                  if it does not

``<run>`` is the pipeline execution's id. The definition is built with the SageMaker Python SDK
(``build_pipeline`` / ``definition_json``: no AWS call is made) and sent with boto3
(``upsert_pipeline``, ``start_execution``), so the gateway passes in the one sagemaker client it
made. The SDK is imported only to build a definition: upserting a definition written by
``forecast-pipeline`` (``make pipeline``) and starting executions need boto3 alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forecast_gateway.backends.sagemaker import pipeline_registry
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.backends.sagemaker.training import data_distribution, metric_definitions
from forecasting.container import env as container_env
from forecasting.errors import HyperparameterError, UserError
from forecasting.hyperparameters import MODEL_KINDS, SPECS, parse

# Pipeline parameter names (the StartPipelineExecution contract).
RETAILER = "Retailer"
INPUT_DATA_URI = "InputDataUri"
MODEL_KIND = "ModelKind"
# Pipeline parameter -> the training hyperparameter it sets (defaults come from the library).
HYPERPARAMETER_PARAMETERS = {
    "Horizon": "horizon",
    "NumRound": "num_round",
    "EarlyStoppingRounds": "early_stopping_rounds",
    "Eta": "eta",
    "MaxDepth": "max_depth",
    "ZeroSampleRate": "zero_sample_rate",
    "LstmEpochs": "lstm_epochs",
    "Seed": "seed",
}
PARAMETER_NAMES = (RETAILER, INPUT_DATA_URI, MODEL_KIND, *HYPERPARAMETER_PARAMETERS,
                   pipeline_registry.MODEL_PACKAGE_GROUP, pipeline_registry.MODEL_APPROVAL_STATUS)

# Step names (what ListPipelineExecutionSteps and the local executor report).
CLEAN_STEP = "Clean"
TRAIN_STEP = "Train"
EVALUATE_STEP = "Evaluate"
CHECK_STEP = "BeatsBaseline"
# The names the register steps report (ModelStep's "<name>-CreateModel" / "-RegisterModel").
REGISTER_STEP = pipeline_registry.CREATE_MODEL_STEP
PACKAGE_STEP = pipeline_registry.PACKAGE_STEP
MODEL_PACKAGE_GROUP = pipeline_registry.MODEL_PACKAGE_GROUP
FAIL_STEP = "WorseThanBaseline"

# The PropertyFile the condition reads, and the paths inside evaluation.json.
EVALUATION_PROPERTY_FILE = "EvaluationReport"
MODEL_RMSLE_PATH = "summary.model_rmsle"
BASELINE_RMSLE_PATH = "summary.baseline_rmsle"

PARQUET_CONTENT_TYPE = "application/x-parquet"
# The SDK defaults config that opts out of its telemetry (``telemetry_opted_out``).
SDK_CONFIG = {"SchemaVersion": "1.0",
              "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@dataclass(frozen=True)
class PipelineSettings:
    """What a pipeline definition is built from (the rest arrives per execution as parameters)."""

    role_arn: str
    """Execution role of every job of the pipeline (and of the registered model)."""
    training_image: str
    """Training image URI: runs ``train`` and also ``clean`` and ``evaluate``."""
    inference_image: str
    """Inference image URI of the model the Register step creates."""
    bucket: str
    """S3 bucket of the storage layout."""
    prefix: str = ""
    """Key prefix inside the bucket ('' = the bucket's root)."""
    name: str = "retail-forecast"
    """Pipeline name (one pipeline serves every retailer: the retailer is a parameter)."""
    region: str = "us-east-1"
    """AWS region written into the session the SDK builds with."""
    processing_instance_type: str = "ml.m5.xlarge"
    """Instance type of the Clean and Evaluate jobs (``local`` in local mode)."""
    processing_instance_count: int = 1
    """Instances of the Clean and Evaluate jobs (the entrypoints use one)."""
    training_instance_type: str = "ml.m5.xlarge"
    """Instance type of the Train job (``local`` in local mode)."""
    training_instance_count: int = 1
    """Instances of the Train job."""
    volume_size_gb: int = 30
    """EBS volume of each job, in GB."""
    max_runtime_s: int = 24 * 3600
    """StoppingCondition.MaxRuntimeInSeconds of each job."""

    def __post_init__(self):
        for name in ("role_arn", "training_image", "inference_image", "bucket", "name"):
            if not str(getattr(self, name)).strip():
                raise UserError(f"pipeline setting '{name}' must not be empty")
        try:
            S3Layout(self.bucket, self.prefix)
        except ValueError as exc:
            raise UserError(f"pipeline setting 'bucket': {exc}") from None
        for name in ("processing_instance_count", "training_instance_count", "volume_size_gb",
                     "max_runtime_s"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"pipeline setting '{name}' must be >= 1")

    @property
    def layout(self) -> S3Layout:
        """The storage layout the pipeline reads and writes."""
        return S3Layout(self.bucket, self.prefix)

    def area_uri(self, area: str) -> str:
        """``s3://bucket/prefix/<area>``: raw, processed, models or evaluation."""
        return self.layout.uri(self.layout.key(area))


def _hyperparameter_defaults() -> dict[str, Any]:
    return {param: SPECS[hp].default for param, hp in HYPERPARAMETER_PARAMETERS.items()}


def build_pipeline(settings: PipelineSettings, session=None):
    """The ``sagemaker.workflow.pipeline.Pipeline`` object.

    ``session`` defaults to a ``PipelineSession`` for ``settings.region`` that makes no AWS call
    while building; pass a ``LocalPipelineSession`` to run the pipeline in local mode.
    """
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionLessThan
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.parameters import (
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep

    session = session or _offline_session(settings)
    package = [] if pipeline_registry.local(session) else pipeline_registry.parameters()
    retailer = ParameterString(RETAILER)
    input_uri = ParameterString(INPUT_DATA_URI)
    model_kind = ParameterString(MODEL_KIND, default_value=SPECS["model_kind"].default,
                                 enum_values=list(MODEL_KINDS))
    hp_params = {}
    for param, default in _hyperparameter_defaults().items():
        cls = {"int": ParameterInteger, "float": ParameterFloat}[SPECS[
            HYPERPARAMETER_PARAMETERS[param]].kind]
        hp_params[param] = cls(param, default_value=default)
    run = ExecutionVariables.PIPELINE_EXECUTION_ID

    def under(area: str, *tail: str):
        """s3://bucket/prefix/<area>/<retailer>/<run>/<tail...>"""
        return Join(on="/", values=[settings.area_uri(area), retailer, run, *tail])

    processing = {"role": settings.role_arn, "image_uri": settings.training_image,
                  "instance_count": settings.processing_instance_count,
                  "instance_type": settings.processing_instance_type,
                  "volume_size_in_gb": settings.volume_size_gb,
                  "max_runtime_in_seconds": settings.max_runtime_s,
                  "sagemaker_session": session}
    paths = container_env.ProcessingEnv(Path(container_env.DEFAULT_OPT_ML))

    # Clean: raw upload -> splits + cleaning report.
    cleaner = Processor(entrypoint=["clean"], base_job_name="retail-forecast-clean", **processing)
    clean_step = ProcessingStep(CLEAN_STEP, step_args=cleaner.run(
        inputs=[ProcessingInput(source=input_uri, destination=str(paths.raw_dir),
                                input_name="raw")],
        outputs=[ProcessingOutput(output_name=split, source=str(paths.split_dir(split)),
                                  destination=under("processed", split))
                 for split in container_env.SPLITS]
        + [ProcessingOutput(output_name="report", source=str(paths.report_dir),
                            destination=under("processed"))],
        arguments=["--horizon", hp_params["Horizon"].to_string()] + (
            # several training instances: splits as shards, whole series each (scaling.md)
            ["--shards", str(settings.training_instance_count)]
            if settings.training_instance_count > 1 else []),
    ))

    # Train: the training image on the processed train and validation channels.
    hyperparameters = {"model_kind": model_kind}
    hyperparameters.update({hp: hp_params[param].to_string()
                            for param, hp in HYPERPARAMETER_PARAMETERS.items()})
    estimator = Estimator(
        image_uri=settings.training_image, role=settings.role_arn,
        instance_count=settings.training_instance_count,
        instance_type=settings.training_instance_type,
        volume_size=settings.volume_size_gb, max_run=settings.max_runtime_s,
        output_path=Join(on="/", values=[settings.area_uri("models"), retailer]),
        base_job_name="retail-forecast-train", hyperparameters=hyperparameters,
        metric_definitions=metric_definitions(), sagemaker_session=session)
    split_uri = clean_step.properties.ProcessingOutputConfig.Outputs
    distribution = data_distribution(settings.training_instance_type,
                                     settings.training_instance_count)
    if distribution == "FullyReplicated":
        distribution = None    # SageMaker's default; the definition of one instance unchanged
    with telemetry_opted_out(session):
        train_args = estimator.fit(inputs={
            channel: TrainingInput(split_uri[channel].S3Output.S3Uri, distribution=distribution,
                                   content_type=PARQUET_CONTENT_TYPE)
            for channel in (container_env.TRAIN_CHANNEL, container_env.VALIDATION_CHANNEL)})
    train_step = TrainingStep(TRAIN_STEP, step_args=train_args)
    model_data = train_step.properties.ModelArtifacts.S3ModelArtifacts

    # Evaluate: model.tar.gz + the test split -> evaluation.json.
    report = PropertyFile(name=EVALUATION_PROPERTY_FILE, output_name="evaluation",
                          path=container_env.EVALUATION_FILE)
    evaluator = Processor(entrypoint=["evaluate"], base_job_name="retail-forecast-evaluate",
                          **processing)
    evaluate_step = ProcessingStep(EVALUATE_STEP, property_files=[report],
                                   step_args=evaluator.run(
        inputs=[ProcessingInput(source=model_data, destination=str(paths.model_input_dir),
                                input_name="model"),
                ProcessingInput(source=split_uri["test"].S3Output.S3Uri,
                                destination=str(paths.test_input_dir), input_name="test")],
        outputs=[ProcessingOutput(output_name="evaluation", source=str(paths.evaluation_dir),
                                  destination=under("evaluation"))],
    ))

    # Condition: register the model only when it beats the seasonal-naive baseline.
    model_rmsle = JsonGet(step_name=evaluate_step.name, property_file=report,
                          json_path=MODEL_RMSLE_PATH)
    baseline_rmsle = JsonGet(step_name=evaluate_step.name, property_file=report,
                             json_path=BASELINE_RMSLE_PATH)
    register_steps = pipeline_registry.register_steps(
        inference_image=settings.inference_image, role_arn=settings.role_arn, session=session,
        model_data=model_data, evaluation_uri=under("evaluation", container_env.EVALUATION_FILE),
        retailer=retailer, run=run, group=package[0] if package else None,
        approval=package[1] if package else None)
    fail_step = FailStep(FAIL_STEP, error_message=Join(on=" ", values=[
        "the model's test RMSLE", model_rmsle,
        "does not beat the seasonal-naive baseline's", baseline_rmsle,
        "for retailer", retailer]))
    check_step = ConditionStep(
        CHECK_STEP, conditions=[ConditionLessThan(left=model_rmsle, right=baseline_rmsle)],
        if_steps=register_steps, else_steps=[fail_step])

    return Pipeline(name=settings.name,
                    parameters=[retailer, input_uri, model_kind, *hp_params.values(), *package],
                    steps=[clean_step, train_step, evaluate_step, check_step],
                    sagemaker_session=session)


def _offline_session(settings: PipelineSettings):
    """A PipelineSession that never calls AWS while building (bucket and region given)."""
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    boto_session = boto3.Session(region_name=settings.region)
    return PipelineSession(boto_session=boto_session, default_bucket=settings.bucket)


@contextmanager
def telemetry_opted_out(session):
    """``session`` sends no SDK telemetry inside the block, unless it has an SDK config of its
    own (then that config decides).

    Only the SDK's config can opt out, and the SDK validates the whole config against its JSON
    schema on every lookup (about 1 s each on a busy 2-core machine, some 70 lookups to build
    this pipeline). Of the calls made while building, only ``Estimator.fit`` reports telemetry,
    so the opt-out is set around the calls that report, not for the whole build. Local mode's
    job calls report too: wrap ``Pipeline.start`` the same way.
    """
    own = getattr(session, "sagemaker_config", None)
    if own:
        yield session
        return
    session.sagemaker_config = SDK_CONFIG
    try:
        yield session
    finally:
        session.sagemaker_config = own


def definition_json(settings: PipelineSettings, session=None) -> str:
    """The pipeline definition JSON that CreatePipeline/UpdatePipeline take."""
    return build_pipeline(settings, session).definition()


def upsert_pipeline(sagemaker_client, settings: PipelineSettings, definition: str | None = None,
                    description: str = "retail-forecast: clean, train, evaluate, register") -> str:
    """Create the pipeline, or update it when it exists; returns the pipeline ARN.

    ``definition`` defaults to ``definition_json(settings)`` (needs the SDK); pass the JSON
    ``forecast-pipeline`` wrote to upsert with boto3 alone.
    """
    from botocore.exceptions import ClientError

    body = definition if definition is not None else definition_json(settings)
    request = {"PipelineName": settings.name, "PipelineDefinition": body,
               "PipelineDescription": description, "RoleArn": settings.role_arn}
    try:
        sagemaker_client.describe_pipeline(PipelineName=settings.name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFound",
                                                              "ValidationException"):
            raise
        return sagemaker_client.create_pipeline(**request)["PipelineArn"]
    return sagemaker_client.update_pipeline(**request)["PipelineArn"]


def execution_parameters(retailer: str, input_uri: str, model_kind: str | None = None,
                         hyperparameters: Mapping[str, Any] | None = None) -> list[dict]:
    """PipelineParameters of one execution, checked with the library's hyperparameter schema.

    ``hyperparameters`` uses the training names (``num_round``, ``eta``, ...); only those in
    ``HYPERPARAMETER_PARAMETERS`` are pipeline parameters, others raise ``HyperparameterError``.
    """
    if not retailer or not retailer.strip():
        raise UserError("retailer must not be empty")
    if not input_uri.startswith("s3://"):
        raise UserError(f"input URI must be an s3:// URI, got {input_uri!r}")
    raw = dict(hyperparameters or {})
    if model_kind is not None:
        raw["model_kind"] = model_kind
    by_hp = {hp: param for param, hp in HYPERPARAMETER_PARAMETERS.items()}
    for name in raw:
        if name != "model_kind" and name in SPECS and name not in by_hp:
            raise HyperparameterError(name, "is not a parameter of the pipeline (its parameters "
                                            f"set: {', '.join(sorted(by_hp))})")
    values = parse(raw).values          # unknown names and bad values raise here
    params = [{"Name": RETAILER, "Value": retailer}, {"Name": INPUT_DATA_URI, "Value": input_uri},
              {"Name": MODEL_KIND, "Value": values["model_kind"]}]
    params += [{"Name": by_hp[name], "Value": str(values[name])}
               for name in raw if name in by_hp]
    return params


def start_execution(sagemaker_client, pipeline_name: str, *, retailer: str, input_uri: str,
                    model_kind: str | None = None,
                    hyperparameters: Mapping[str, Any] | None = None,
                    display_name: str | None = None, model_package_group: str = "") -> str:
    """StartPipelineExecution for one retailer's dataset; returns the execution ARN.

    Parameters sent: ``Retailer``, ``InputDataUri`` (the raw upload, s3://...), ``ModelKind``,
    ``ModelPackageGroup`` when given and, for each hyperparameter given, its parameter
    (``HYPERPARAMETER_PARAMETERS``); the others keep the definition's defaults.
    """
    params = execution_parameters(retailer, input_uri, model_kind, hyperparameters)
    if model_package_group:
        params.append({"Name": MODEL_PACKAGE_GROUP, "Value": model_package_group})
    request = {"PipelineName": pipeline_name, "PipelineParameters": params}
    if display_name:
        request["PipelineExecutionDisplayName"] = display_name[:82]
    return sagemaker_client.start_pipeline_execution(**request)["PipelineExecutionArn"]
