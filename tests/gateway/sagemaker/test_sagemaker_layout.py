"""The S3 layout is exactly as docs/sagemaker.md writes it."""

from __future__ import annotations

import pytest
from forecast_gateway.backends.sagemaker.layout import S3Layout, parse_s3_uri


def test_every_key_of_the_layout_under_a_prefix() -> None:
    layout = S3Layout("forecast-data", "/tenant-data/")
    assert layout.raw_key("acme", "ds-0123456789ab", "csv") == \
        "tenant-data/raw/acme/ds-0123456789ab.csv"
    assert layout.processed_prefix("acme", "run-7") == "tenant-data/processed/acme/run-7/"
    assert layout.models_prefix("acme") == "tenant-data/models/acme/"
    assert layout.model_key("acme", "acme-job-1") == \
        "tenant-data/models/acme/acme-job-1/output/model.tar.gz"
    assert layout.evaluation_key("acme", "run-7") == \
        "tenant-data/evaluation/acme/run-7/evaluation.json"
    assert layout.uri(layout.models_prefix("acme")) == "s3://forecast-data/tenant-data/models/acme/"


def test_no_prefix_means_the_bucket_root() -> None:
    layout = S3Layout("forecast-data")
    assert layout.raw_key("acme", "ds-1", "parquet") == "raw/acme/ds-1.parquet"
    assert parse_s3_uri(layout.uri("raw/acme/ds-1.parquet")) == ("forecast-data",
                                                                  "raw/acme/ds-1.parquet")


@pytest.mark.parametrize("bucket", ["", "Upper", "a", "under_score", "-dash"])
def test_bad_bucket_names_are_refused(bucket: str) -> None:
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        S3Layout(bucket)


def test_a_uri_that_is_not_s3_is_refused() -> None:
    with pytest.raises(ValueError, match="not an s3://bucket/key URI"):
        parse_s3_uri("file:///tmp/x.csv")
