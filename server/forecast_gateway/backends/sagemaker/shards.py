"""The dataset as shards for a training job on several instances (`--sagemaker-instance-count`
above 1): whole series per file, balanced by rows (`forecasting.sharding`), uploaded once under
`processed/<retailer>/<dataset_id>-<n>-shards/train/part-NNNNN.parquet`.

The training channel then points at that prefix with `S3DataDistributionType=ShardedByS3Key`,
so each instance downloads only its files (`training.data_distribution`); local mode copies
every file to every container, and `train` takes the file of its rank (docs/scaling.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from forecast_gateway.backends.base import CONTENT_TYPES
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecasting import sharding
from forecasting.schema import read_table, validate_history


def shards_prefix(layout: S3Layout, retailer: str, dataset_id: str, shards: int) -> str:
    """`processed/<retailer>/<dataset_id>-<n>-shards/train/` (the key prefix, ends with /)."""
    return layout.processed_prefix(retailer, f"{dataset_id}-{shards}-shards") + "train/"


def upload_shards(s3: Any, layout: S3Layout, retailer: str, data_path: Path, shards: int
                  ) -> str:
    """Shard the dataset at `data_path` into `shards` Parquet files and upload them (skipped
    when every one is already there); the prefix's URI. A dataset that does not validate raises
    the schema's `DataValidationError`, as the training job would have failed on it."""
    prefix = shards_prefix(layout, retailer, data_path.stem, shards)
    keys = [prefix + sharding.shard_name(i) for i in range(shards)]
    listed = s3.list_objects_v2(Bucket=layout.bucket, Prefix=prefix)
    if {o["Key"] for o in listed.get("Contents", [])} >= set(keys):
        return layout.uri(prefix)
    frame, _ = validate_history(read_table(data_path))
    with tempfile.TemporaryDirectory(prefix="shards-") as tmp:
        sharding.write_shards(frame, sharding.assign(frame, shards), shards, Path(tmp))
        for key in keys:
            s3.upload_file(str(Path(tmp) / key.rsplit("/", 1)[1]), layout.bucket, key,
                           ExtraArgs={"ContentType": CONTENT_TYPES["parquet"]})
    return layout.uri(prefix)
