"""Model artifacts on disk: written atomically, loaded only when their checksum matches."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings

from recommenders.algorithms.base import Recommender


class ArtifactError(Exception):
    """An artifact is missing or does not match its recorded checksum."""


def artifact_dir() -> Path:
    path = Path(settings.ARTIFACT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_model(model: Recommender, name: str) -> tuple[Path, str]:
    """Write `model` to ARTIFACT_DIR/name; returns (path, sha256 of the file).

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file
    is then renamed over the final name: a crash leaves either no artifact or a whole one.
    """
    target = artifact_dir() / name
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
    os.close(handle)
    try:
        model.save(Path(temporary))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        digest = sha256_of(Path(temporary))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, digest


def load_model(path: Path | str, expected_sha256: str) -> Recommender:
    """Load the artifact after checking that its bytes are the ones training wrote."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"The model file {path} is missing.")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ArtifactError(f"The model file {path} has checksum {actual}, expected {expected_sha256}: it changed.")
    return Recommender.load(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
