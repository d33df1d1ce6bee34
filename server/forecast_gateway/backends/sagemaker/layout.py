"""The storage layout under `s3://<bucket>/<prefix>/` (docs/sagemaker.md, "S3 layout"):

```
raw/<retailer>/<dataset_id>.<csv|parquet>                 uploads as received
processed/<retailer>/<run>/{train,validation,test}/       the cleaning step's splits and report
models/<retailer>/<job>/output/model.tar.gz               what a training job writes (SageMaker's
                                                          OutputDataConfig layout)
evaluation/<retailer>/<run>/evaluation.json               the evaluation step's report
```

Every key the SageMaker backend (and the pipeline) reads or writes comes from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Layout:
    """Keys and URIs of the layout in one bucket, under an optional prefix."""

    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        if not _BUCKET_RE.match(self.bucket):
            raise ValueError(f"{self.bucket!r} is not a valid S3 bucket name")
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def key(self, *parts: str) -> str:
        """`<prefix>/<parts...>` (no leading slash)."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, key: str) -> str:
        """`s3://<bucket>/<key>`."""
        return f"s3://{self.bucket}/{key}"

    def raw_key(self, retailer: str, dataset_id: str, fmt: str) -> str:
        """An upload, as received."""
        return self.key("raw", retailer, f"{dataset_id}.{fmt}")

    def processed_prefix(self, retailer: str, run: str) -> str:
        """The cleaning step's output of one run (`train/`, `validation/`, `test/`, report)."""
        return self.key("processed", retailer, run) + "/"

    def models_prefix(self, retailer: str) -> str:
        """OutputDataConfig.S3OutputPath of the retailer's training jobs (SageMaker appends
        `<job>/output/model.tar.gz`)."""
        return self.key("models", retailer) + "/"

    def model_key(self, retailer: str, job: str) -> str:
        """Where SageMaker puts the model of training job `job`."""
        return self.key("models", retailer, job, "output", "model.tar.gz")

    def evaluation_key(self, retailer: str, run: str) -> str:
        """The evaluation report of one run."""
        return self.key("evaluation", retailer, run, "evaluation.json")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); ValueError otherwise."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key
