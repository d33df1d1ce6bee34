"""The storage layout under `s3://<bucket>/<prefix>/` (docs/sagemaker.md, "S3 layout"):

```
raw/<retailer>/<dataset_id>.<csv|parquet>                 uploads as received
processed/<retailer>/<run>/{train,validation,test}/       the cleaning step's splits and report
models/<retailer>/<job>/output/model.tar.gz               what a training job writes (SageMaker's
                                                          OutputDataConfig layout)
models/<retailer>/<version>-<sha12>/<file>                a published version's files, with
                                                          --artifact-store (dataplane/object_store.py)
evaluation/<retailer>/<run>/evaluation.json               the evaluation step's report
```

Every key the SageMaker backend (and the pipeline) reads or writes comes from here, and so do
those of the gateway's artifact store (`--artifact-store s3://bucket/prefix`). A version's name
(`v3-1a2b3c4d5e6f`) never equals a training job's (`<retailer>-job-<hex>`) or an import's
(`import-<hex>`), so both live under `models/<retailer>/`.
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

    @classmethod
    def from_uri(cls, uri: str, field: str = "uri") -> S3Layout:
        """`s3://bucket[/prefix]` -> its layout; ValueError saying what is wrong (`field` names
        the setting in the message)."""
        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise ValueError(f"{field} must be s3://bucket or s3://bucket/prefix, got {uri[:200]!r}")
        bucket, _, prefix = uri[5:].partition("/")
        if any(part in (".", "..") for part in prefix.split("/")) or "//" in prefix.strip("/"):
            raise ValueError(f"{field}: the prefix of {uri[:200]!r} has an empty, '.' or '..' part")
        try:
            return cls(bucket, prefix)
        except ValueError as exc:
            raise ValueError(f"{field}: {exc} (in {uri[:200]!r})") from None

    @property
    def root_uri(self) -> str:
        """`s3://<bucket>/<prefix>` (no trailing slash)."""
        return self.uri(self.prefix).rstrip("/")

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

    def version_key(self, retailer: str, name: str, file: str = "") -> str:
        """A file (POSIX path inside the artifact) of published version `name` =
        `<version>-<sha12>`; without `file`, the version's prefix (ends with "/")."""
        return self.key("models", retailer, name, file) if file \
            else self.key("models", retailer, name) + "/"

    def evaluation_key(self, retailer: str, run: str) -> str:
        """The evaluation report of one run."""
        return self.key("evaluation", retailer, run, "evaluation.json")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); ValueError otherwise."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key
