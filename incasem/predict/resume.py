"""Resuming a prediction safely: done markers keyed by everything that shapes the output.

A resumed run may skip a block only if the block would come out the same. Daisy's done markers
alone do not know that: they would happily skip blocks written by another checkpoint. So every
entry's markers live in a folder named by a hash of its provenance (checkpoint digest, the entry
and its datasets, block layout, normalisation, output type, threshold, incasem version): the same
prediction finds its markers and skips exactly the blocks they record, and any change finds no
markers and recomputes everything.

The blocks' metric counts live in a folder named by the same hash
(`incasem.predict.block_metrics`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def provenance_hash(record: dict[str, Any]) -> str:
    """sha256 (hex) of a JSON-serialisable record, independent of key order."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def tracking_path(work_dir: Path, digest: str) -> Path:
    """Daisy's done-marker store for one provenance."""
    return work_dir / f"blocks-{digest[:16]}"
