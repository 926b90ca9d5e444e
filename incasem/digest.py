"""sha256 digests of files: what a checkpoint, a data config or a prediction was made from.

Provenance records (model cards, prediction groups, exported models) name their sources by
content, not only by path, so a moved file still matches and an edited one does not. Below every
package that records provenance.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB pieces."""
    return digest_files([path])


def digest_files(paths: Sequence[str | os.PathLike]) -> str:
    """sha256 (hex) over the contents of files (e.g. the training data configs), in order."""
    sha = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
    return sha.hexdigest()
