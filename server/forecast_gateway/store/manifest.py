"""An artifact's manifest: every file of a model directory and its sha256.

Recorded in the registry when a version is published and checked before the gateway loads the
version, so a directory that changed on disk (a crash that left another artifact in its place,
a partial copy, a hand edit) is refused with an `ArtifactError` (FAILED_PRECONDITION) instead of
being served as if it were the model the registry describes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from forecasting.errors import ArtifactError

BLOCK_BYTES = 1 << 20


def compute(directory: Path) -> dict[str, str]:
    """{path relative to `directory` (POSIX): sha256 hex} for every regular file below it."""
    directory = Path(directory)
    manifest: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise ArtifactError(f"artifact file {path.relative_to(directory).as_posix()!r} is a "
                                "symbolic link; an artifact holds regular files only")
        if path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(BLOCK_BYTES), b""):
                    digest.update(block)
            manifest[path.relative_to(directory).as_posix()] = digest.hexdigest()
    return manifest


def digest(files: dict[str, str]) -> str:
    """The sha256 of a manifest itself (its JSON, keys sorted): one hex string that names an
    artifact's exact contents (the object store keys a version by its first 12 digits)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def verify(directory: Path, expected: dict[str, str], what: str) -> None:
    """Raise ArtifactError naming the first difference between the directory and `expected`.

    `what` names the version in the message (e.g. "model version 'v3' of retailer 'acme'").
    """
    if not Path(directory).is_dir():
        raise ArtifactError(f"{what}: its artifact directory is missing on the gateway's disk")
    found = compute(directory)
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    changed = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
    if missing:
        detail = f"file {missing[0]!r} is missing"
    elif extra:
        detail = f"file {extra[0]!r} is not part of it"
    else:
        detail = f"file {changed[0]!r} does not match its recorded sha256"
    count = len(missing) + len(extra) + len(changed)
    raise ArtifactError(f"{what} does not match the checksum recorded when it was published "
                        f"({detail}; {count} difference(s)); the gateway will not serve it. "
                        "Set another version live or train again.")
