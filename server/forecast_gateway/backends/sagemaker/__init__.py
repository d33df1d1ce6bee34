"""The SageMaker backend (`--backend sagemaker`), one concern per module:

- `aws`: the one place boto3 clients are made (region, endpoint URL, retries)
- `settings`: the backend's settings, from `GatewayConfig`
- `layout`: the S3 storage layout (raw/, processed/, models/, evaluation/)
- `validation`: the service model's enums, patterns and bounds, checked on every request
- `training`: CreateTrainingJob, following DescribeTrainingJob, fetching model.tar.gz
- `endpoints`: per-retailer Model, EndpointConfig and Endpoint; UpdateEndpoint on a new version
- `guardrails`: blue/green traffic shifting of updates, rolled back by CloudWatch alarms
- `model_registry`: one model package group per retailer, a package per version, its approval
- `invoke`: InvokeEndpoint in payloads under the limit, concurrently, in row order
- `pipeline`: the SageMaker Pipeline clean -> train -> evaluate -> register
- `pipeline_registry`: the pipeline's register steps (CreateModel, CreateModelPackage)
- `backend`: `SageMakerBackend`, the `Backend` the gateway talks to
"""
