"""Training on several instances, as the backend and the pipeline ask for it: the dataset
sharded by series into S3 (moto over HTTP), the training channel `ShardedByS3Key` (local mode:
`FullyReplicated`, the only kind it runs), the pipeline's Clean step writing shards."""

from __future__ import annotations

import json

import pandas as pd
from forecast_gateway.backends.sagemaker import pipeline, shards, training, validation
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.backends.sagemaker.pipeline import PipelineSettings
from sagemaker_helpers import ROLE, SESSION, settings

from forecasting.schema import load_history


def _channel(request: dict) -> dict:
    (channel,) = request["InputDataConfig"]
    return channel


def _request(**overrides) -> dict:
    return training.job_request(
        settings("forecast-data", **overrides), S3Layout("forecast-data", "p"),
        name="acme-job-1", retailer="acme", job_id="job-1",
        data_uri="s3://forecast-data/p/processed/acme/ds-1-2-shards/train/",
        data_format="parquet", hyperparameters={"model_kind": "xgboost"})


def test_two_instances_shard_the_channel_by_key_and_pass_the_service_model() -> None:
    request = _request(instance_count=2)
    assert _channel(request)["DataSource"]["S3DataSource"]["S3DataDistributionType"] \
        == "ShardedByS3Key"
    assert request["ResourceConfig"]["InstanceCount"] == 2
    operation = SESSION.client("sagemaker").meta.service_model.operation_model(
        "CreateTrainingJob")
    assert validation.check_request(operation, request) == []


def test_one_instance_and_local_mode_replicate_the_channel() -> None:
    for overrides in ({}, {"instance_count": 2, "instance_type": "local"}):
        assert _channel(_request(**overrides))["DataSource"]["S3DataSource"][
            "S3DataDistributionType"] == "FullyReplicated"


def test_the_upload_is_sharded_by_series_once(moto_clients, bucket, tmp_path) -> None:
    from sagemaker_job import SAMPLE

    layout = S3Layout(bucket, "tenants")
    s3 = moto_clients.s3
    data = tmp_path / "ds-1.csv"
    data.write_bytes(SAMPLE.read_bytes())
    uri = shards.upload_shards(s3, layout, "acme", data, 2)
    assert uri == f"s3://{bucket}/tenants/processed/acme/ds-1-2-shards/train/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="tenants/processed/acme/")["Contents"]
    keys = sorted(o["Key"] for o in listed)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["part-00000.parquet", "part-00001.parquet"]
    parts = []
    for key in keys:
        s3.download_file(bucket, key, str(tmp_path / "part.parquet"))
        parts.append(pd.read_parquet(tmp_path / "part.parquet"))
    series = [set(zip(p["store_nbr"], p["family"])) for p in parts]
    assert not series[0] & series[1]
    source, _ = load_history(SAMPLE)
    assert sum(len(p) for p in parts) == len(source)
    assert abs(len(parts[0]) - len(parts[1])) <= 0.05 * len(source)
    stamps = [o["LastModified"] for o in listed]
    assert shards.upload_shards(s3, layout, "acme", data, 2) == uri       # already there
    again = s3.list_objects_v2(Bucket=bucket, Prefix="tenants/processed/acme/")["Contents"]
    assert [o["LastModified"] for o in again] == stamps


def test_the_pipeline_cleans_into_shards_for_several_training_instances() -> None:
    values = {"role_arn": ROLE, "bucket": "forecast-bucket", "prefix": "pfx",
              "training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/t:latest",
              "inference_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/i:latest"}
    for count, distribution in ((1, "FullyReplicated"), (2, "ShardedByS3Key")):
        steps = {s["Name"]: s for s in json.loads(pipeline.definition_json(
            PipelineSettings(**values, training_instance_count=count)))["Steps"]}
        clean_args = steps["Clean"]["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert clean_args[2:] == ([] if count == 1 else ["--shards", "2"])
        for channel in steps["Train"]["Arguments"]["InputDataConfig"]:
            source = channel["DataSource"]["S3DataSource"]
            assert source.get("S3DataDistributionType", "FullyReplicated") == distribution
        assert steps["Train"]["Arguments"]["ResourceConfig"]["InstanceCount"] == count
