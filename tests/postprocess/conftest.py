"""Small probability and label volumes on disk for the post-processing tests (no trained model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from incasem.io import create_array

VOXEL_SIZE = (10, 5, 5)
OFFSET = (100, 50, 0)


def blobs(shape: tuple[int, ...], seed: int, fraction: float = 0.5) -> np.ndarray:
    """Boolean random blobs (smoothed noise above its quantile), z, y, x."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2.0)
    return noise > np.quantile(noise, 1 - fraction)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., str]:
    """``write(name, data, voxel_size=..., offset=...)`` stores a dataset in ``tmp_path/c.zarr``
    and returns the container path."""
    container = tmp_path / "c.zarr"

    def _write(
        name: str,
        data: np.ndarray,
        voxel_size: tuple[int, ...] = VOXEL_SIZE,
        offset: tuple[int, ...] = OFFSET,
        attrs: dict | None = None,
    ) -> str:
        channels = data.shape[0] if data.ndim == 4 else None
        array = create_array(
            container,
            name,
            data.shape[-3:],
            voxel_size,
            offset,
            dtype=data.dtype,
            num_channels=channels,
            attrs=attrs,
        )
        array._source_data[...] = data
        return str(container)

    return _write
