"""PNG slices of a container with label outlines overlaid, for reports and quick checks.

A biologist checks a segmentation by looking at it; a slice with coloured outlines over the raw
image answers "does the label sit on the organelle?" faster than any number. Matplotlib's Agg
backend is used so this works on headless machines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from funlib.geometry import Coordinate, Roi  # noqa: E402

from incasem.errors import IncasemError  # noqa: E402
from incasem.io.arrays import open_array  # noqa: E402

_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4")


def _slice_roi(roi: Roi, voxel_size: Coordinate, z: int) -> Roi:
    offset = list(roi.offset)
    shape = list(roi.shape)
    offset[0] = roi.offset[0] + z * voxel_size[0]
    shape[0] = voxel_size[0]
    return Roi(offset, shape)


def plot_slice(
    container: str | os.PathLike,
    raw: str,
    labels: Sequence[str],
    out: str | os.PathLike,
    z: int | None = None,
) -> Path:
    """Write a PNG of one z section: raw in grey, each label's outline in its own colour.

    Args:
        container: the zarr container.
        raw: raw dataset, e.g. ``volumes/raw``.
        labels: label datasets (binary or instance ids) on the same grid region as ``raw``.
        out: PNG path to write.
        z: section index in voxels from the start of ``raw``; default the middle section.

    Returns the path written. The PNG shows the raw next to the raw with outlines, with a legend.
    """
    from skimage.segmentation import find_boundaries

    raw_array = open_array(container, raw)
    depth = raw_array.roi.shape[0] // raw_array.voxel_size[0]
    z = depth // 2 if z is None else z
    if not 0 <= z < depth:
        raise IncasemError(f"{container}/{raw}: section z={z} outside 0..{depth - 1}")
    roi = _slice_roi(raw_array.roi, raw_array.voxel_size, z)
    image = raw_array[roi][0]

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.4), constrained_layout=True)
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xlabel("x (voxels)")
        ax.set_ylabel("y (voxels)")
    axes[0].set_title(f"{raw}, z = {z}")
    overlay = np.zeros(image.shape + (4,), dtype=float)
    handles = []
    for index, dataset in enumerate(labels):
        label_array = open_array(container, dataset)
        if not label_array.roi.contains(roi):
            raise IncasemError(f"{container}/{dataset}: does not cover section z={z} of {raw}")
        section = label_array[roi][0]
        if label_array.voxel_size != raw_array.voxel_size:
            raise IncasemError(
                f"{container}/{dataset}: voxel size {list(label_array.voxel_size)} nm differs "
                f"from {raw} {list(raw_array.voxel_size)} nm"
            )
        colour = matplotlib.colors.to_rgba(_COLOURS[index % len(_COLOURS)])
        overlay[find_boundaries(section, mode="inner")] = colour
        handles.append(matplotlib.patches.Patch(color=colour, label=dataset))
    axes[1].imshow(overlay, interpolation="nearest")
    axes[1].set_title("labels")
    if handles:
        axes[1].legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out
