"""The three Dockerfiles share their dependency stages on purpose (one layer cache for all
images, docs/containers.md "Layers"): this checks they stay identical. No Docker needed."""

from __future__ import annotations

import re

from sagemaker_job import REPO

DOCKERFILES = {name: REPO / "containers" / name / "Dockerfile"
               for name in ("training", "inference", "gateway")}


def stages(text: str) -> dict[str, str]:
    """Named build stages (`FROM ... AS name`) and their instructions, comments dropped."""
    found: dict[str, str] = {}
    for block in re.split(r"^(?=FROM )", text, flags=re.MULTILINE)[1:]:
        header = block.splitlines()[0].split()
        if len(header) == 4 and header[2].upper() == "AS":
            found[header[3]] = "\n".join(line for line in block.splitlines()
                                         if line.strip() and not line.lstrip().startswith("#"))
    return found


def test_dependency_stages_are_identical() -> None:
    by_name = {name: stages(path.read_text()) for name, path in DOCKERFILES.items()}
    for stage in ("requirements", "venv"):
        reference = by_name["training"][stage]
        for name, found in by_name.items():
            assert found.get(stage) == reference, (
                f"containers/{name}/Dockerfile: stage {stage!r} differs from the training "
                "image's, so the images no longer share those layers")
