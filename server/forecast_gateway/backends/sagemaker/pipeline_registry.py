"""The pipeline's register steps, run when the model beats the baseline:

    RegisterModel-CreateModel   ModelStep: CreateModel (the inference image + model.tar.gz)
    ModelPackage-RegisterModel  ModelStep: CreateModelPackage in the retailer's model package
                                group (the ``ModelPackageGroup`` parameter), with the
                                evaluation report as ModelMetrics and the ``ModelApprovalStatus``
                                parameter (PendingManualApproval: the gateway's promotion gate
                                approves it when it makes the version live)

The group is the gateway's (``model_registry.group_name``, created before the execution starts);
an execution started by hand names its own. SageMaker local mode has no executor for
RegisterModel steps: a pipeline built for a ``LocalPipelineSession`` leaves the package step out
(``model_registry.py`` makes the package for local-mode-free paths; local mode has none).
"""

from __future__ import annotations

from typing import Any

from forecast_gateway.backends.base import APPROVALS
from forecast_gateway.backends.sagemaker.model_registry import CONTENT_TYPES

CREATE_MODEL = "RegisterModel"
PACKAGE = "ModelPackage"
#: The names the steps report (ModelStep suffixes its sub-step's kind).
CREATE_MODEL_STEP = f"{CREATE_MODEL}-CreateModel"
PACKAGE_STEP = f"{PACKAGE}-RegisterModel"
#: Pipeline parameters of the package step.
MODEL_PACKAGE_GROUP = "ModelPackageGroup"
MODEL_APPROVAL_STATUS = "ModelApprovalStatus"
DEFAULT_GROUP = "retail-forecast-models"


def parameters() -> list[Any]:
    """The package step's pipeline parameters (group, approval status)."""
    from sagemaker.workflow.parameters import ParameterString

    return [ParameterString(MODEL_PACKAGE_GROUP, default_value=DEFAULT_GROUP),
            ParameterString(MODEL_APPROVAL_STATUS, default_value=APPROVALS[0],
                            enum_values=list(APPROVALS))]


def local(session: Any) -> bool:
    """True for a local-mode session (which cannot run a RegisterModel step)."""
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    return isinstance(session, LocalPipelineSession)


def register_steps(*, inference_image: str, role_arn: str, session: Any, model_data: Any,
                   evaluation_uri: Any, retailer: Any, run: Any,
                   group: Any = None, approval: Any = None) -> list[Any]:
    """CreateModel, then (given `group` and `approval`) CreateModelPackage, as ModelSteps."""
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.workflow.model_step import ModelStep

    model = Model(image_uri=inference_image, model_data=model_data, role=role_arn,
                  sagemaker_session=session)
    steps = [ModelStep(CREATE_MODEL, step_args=model.create())]
    if group is not None and approval is not None:
        metrics = ModelMetrics(model_statistics=MetricsSource(
            content_type="application/json", s3_uri=evaluation_uri))
        steps.append(ModelStep(PACKAGE, step_args=model.register(
            content_types=CONTENT_TYPES, response_types=CONTENT_TYPES,
            model_package_group_name=group, approval_status=approval, model_metrics=metrics,
            description="trained by the retail-forecast pipeline",
            customer_metadata_properties={"retailer": retailer, "run": run})))
    return steps
