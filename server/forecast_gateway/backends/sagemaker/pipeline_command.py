"""The ``forecast-pipeline`` console script (``make pipeline``): the pipeline's definition
JSON (`pipeline.definition_json`) written from flags, which fall back to the gateway's own
settings, so one configuration describes both the backend and the pipeline it upserts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from forecast_gateway import config
from forecast_gateway.backends.sagemaker.pipeline import PipelineSettings, definition_json
from forecasting.errors import UserError

#: forecast-pipeline's defaults: the gateway's own settings, read from their variables by the
#: gateway's reader (`forecast-gateway --help`).
GATEWAY_SETTINGS = {
    "role_arn": "sagemaker_role_arn", "training_image": "sagemaker_training_image",
    "inference_image": "sagemaker_inference_image", "bucket": "sagemaker_bucket",
    "prefix": "sagemaker_prefix", "region": "aws_region",
    "processing_instance_type": "sagemaker_instance_type",
    "training_instance_type": "sagemaker_instance_type",
    "training_instance_count": "sagemaker_instance_count",
    "volume_size_gb": "sagemaker_volume_size_gb", "max_runtime_s": "sagemaker_max_runtime_s",
}


def main(argv: list[str] | None = None) -> int:
    """Console script ``forecast-pipeline``: write the definition JSON (``make pipeline``).

    Each setting is a flag (``--role-arn``, ...); unset flags fall back to the gateway's
    ``FORECAST_GATEWAY_*`` variable of the same setting, then to ``PipelineSettings``' default.
    """
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker").setLevel(logging.ERROR)   # the SDK's notes on every build
    parser = argparse.ArgumentParser(prog="forecast-pipeline",
                                     description="Write the SageMaker Pipeline definition JSON.")
    for f in fields(PipelineSettings):
        shared = GATEWAY_SETTINGS.get(f.name)
        try:
            from_env = config.from_environ(shared) if shared else None
        except ValueError as exc:
            parser.error(str(exc))
        default = from_env or (None if f.default is MISSING else f.default)
        where = f" ({config.variable(shared)})" if shared else ""
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=default,
                            required=default is None,
                            type=int if isinstance(f.default, int) else str,
                            help=f"default: {default!r}{where}")
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help="file to write (default: standard output)")
    args = vars(parser.parse_args(argv))
    output = args.pop("output")
    settings_args = {k: v for k, v in args.items() if v is not None}
    try:
        settings = PipelineSettings(**settings_args)
    except UserError as exc:
        parser.error(str(exc))
    body = json.dumps(json.loads(definition_json(settings)), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(body)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(body, encoding="utf-8")
        print(f"wrote {output} (pipeline {settings.name!r})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
