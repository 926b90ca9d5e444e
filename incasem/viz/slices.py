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


def _section(container, dataset: str, roi: Roi, raw: str, voxel_size: Coordinate) -> np.ndarray:
    array = open_array(container, dataset)
    if array.voxel_size != voxel_size:
        raise IncasemError(
            f"{container}/{dataset}: voxel size {list(array.voxel_size)} nm differs from {raw} "
            f"{list(voxel_size)} nm"
        )
    if not array.roi.contains(roi):
        raise IncasemError(f"{container}/{dataset}: does not cover this section of {raw}")
    return array[roi][0]


def plot_slice(
    container: str | os.PathLike,
    raw: str,
    labels: Sequence[str],
    out: str | os.PathLike,
    z: int | None = None,
    probabilities: str | None = None,
) -> Path:
    """Write a PNG of one z section: raw in grey, each label's outline in its own colour.

    Args:
        container: the zarr container.
        raw: raw dataset, e.g. ``volumes/raw``.
        labels: label datasets (binary or instance ids, e.g. ground truth and a predicted
            segmentation) covering the section.
        out: PNG path to write.
        z: section index in voxels from the start of ``raw``; default the middle section.
        probabilities: a probability dataset (uint8 0-255 or float 0-1) to show in its own
            panel; it may cover only part of the section.

    Returns the path written: panels raw | probabilities (if given) | raw with label outlines.
    """
    from skimage.segmentation import find_boundaries

    raw_array = open_array(container, raw)
    voxel_size = raw_array.voxel_size
    depth = raw_array.roi.shape[0] // voxel_size[0]
    z = depth // 2 if z is None else z
    if not 0 <= z < depth:
        raise IncasemError(f"{container}/{raw}: section z={z} outside 0..{depth - 1}")
    roi = _slice_roi(raw_array.roi, voxel_size, z)
    image = raw_array[roi][0]

    panels = 3 if probabilities else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 6.4), constrained_layout=True)
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xlabel("x (voxels)")
        ax.set_ylabel("y (voxels)")
    axes[0].set_title(f"{raw}, z = {z}")
    if probabilities:
        array = open_array(container, probabilities)
        inside = array.roi.intersect(roi)
        if inside.empty:
            raise IncasemError(f"{container}/{probabilities}: does not cover section z={z}")
        section = array[inside][0].astype(float)
        section /= 255 if array.dtype == np.uint8 else 1
        begin = (inside.offset - roi.offset) / voxel_size
        end = begin + inside.shape / voxel_size
        extent = (begin[2] - 0.5, end[2] - 0.5, end[1] - 0.5, begin[1] - 0.5)
        shown = axes[1].imshow(section, cmap="magma", vmin=0, vmax=1, extent=extent, alpha=0.85)
        fig.colorbar(shown, ax=axes[1], shrink=0.7, label="probability")
        axes[1].set_xlim(-0.5, image.shape[1] - 0.5)
        axes[1].set_ylim(image.shape[0] - 0.5, -0.5)
        axes[1].set_title(probabilities, fontsize=9)
    overlay = np.zeros(image.shape + (4,), dtype=float)
    handles = []
    for index, dataset in enumerate(labels):
        section = _section(container, dataset, roi, raw, voxel_size)
        colour = matplotlib.colors.to_rgba(_COLOURS[index % len(_COLOURS)])
        overlay[find_boundaries(section, mode="inner")] = colour
        handles.append(matplotlib.patches.Patch(color=colour, label=dataset))
    axes[-1].imshow(overlay, interpolation="nearest")
    axes[-1].set_title("outlines")
    if handles:
        axes[-1].legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out
