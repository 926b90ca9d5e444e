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
from funlib.persistence import Array  # noqa: E402

from incasem.atomic import write_atomic
from incasem.errors import IncasemError  # noqa: E402
from incasem.io.arrays import open_array  # noqa: E402
from incasem.io.roi import format_roi_voxels, roi_to_voxels  # noqa: E402

_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4")


def _section_roi(raw: Array, z: int | None, roi: Roi | None, name: str) -> tuple[int, Roi]:
    """The world section index (voxels) and the world ROI (nm) of the section to draw."""
    voxel_size = raw.voxel_size
    window = raw.roi if roi is None else roi
    if not raw.roi.contains(window):
        asked, whole = (format_roi_voxels(*roi_to_voxels(r, voxel_size)) for r in (window, raw.roi))
        raise IncasemError(f"{name}: --roi {asked} (voxels) is not inside the raw's {whole}")
    first = window.offset[0] // voxel_size[0]
    end = window.end[0] // voxel_size[0]
    z = (first + end) // 2 if z is None else z
    if not first <= z < end:
        raise IncasemError(f"{name}: section z={z} outside {first}..{end - 1} (world voxels)")
    offset, shape = list(window.offset), list(window.shape)
    offset[0], shape[0] = z * voxel_size[0], voxel_size[0]
    return z, Roi(offset, shape)


def _extent(part: Roi, voxel_size: Coordinate) -> tuple[float, float, float, float]:
    """imshow's extent of a section part in world voxels (x left, right; y bottom, top)."""
    begin, end = part.offset / voxel_size, part.end / voxel_size
    return (begin[2] - 0.5, end[2] - 0.5, end[1] - 0.5, begin[1] - 0.5)


def _part(container, dataset: str, section: Roi, voxel_size: Coordinate) -> tuple[Array, Roi]:
    """A dataset on the raw's grid and the part of the section it covers (refused if none)."""
    array = open_array(container, dataset)
    if array.voxel_size != voxel_size:
        raise IncasemError(
            f"{container}/{dataset}: voxel size {list(array.voxel_size)} nm differs from the raw's "
            f"{list(voxel_size)} nm"
        )
    inside = array.roi.intersect(section)
    if inside.empty:
        z = section.offset[0] // voxel_size[0]
        raise IncasemError(f"{container}/{dataset}: does not cover section z={z}")
    return array, inside


def plot_slice(
    container: str | os.PathLike,
    raw: str,
    labels: Sequence[str],
    out: str | os.PathLike,
    z: int | None = None,
    probabilities: str | None = None,
    roi: Roi | None = None,
) -> Path:
    """Write a PNG of one z section: raw in grey, each label's outline in its own colour.

    Coordinates are world voxels (world nm / voxel size, z, y, x), as in data configs and
    ``predict --roi``: a crop of a cell keeps the section numbers and axes of the whole cell.

    Args:
        container: the zarr container.
        raw: raw dataset, e.g. ``volumes/raw``.
        labels: label datasets (binary or instance ids, e.g. ground truth and a predicted
            segmentation) on the raw's voxel grid; each may cover only part of the section.
        out: PNG path to write.
        z: world section index in voxels; default the middle section of ``roi`` (or the raw).
        probabilities: a probability dataset (uint8 0-255 or float 0-1) to show in its own
            panel; it may cover only part of the section.
        roi: world ROI (nm) inside the raw to draw; its y and x bound the picture, its z range
            the sections ``z`` may name. Default: the raw's ROI.

    Returns the path written: panels raw | probabilities (if given) | raw with label outlines.
    """
    from skimage.segmentation import find_boundaries

    raw_array = open_array(container, raw)
    voxel_size = raw_array.voxel_size
    z, section = _section_roi(raw_array, z, roi, f"{container}/{raw}")
    image = raw_array[section][0]
    full = _extent(section, voxel_size)

    panels = 3 if probabilities else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 6.4), constrained_layout=True)
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest", extent=full)
        ax.set_xlabel("x (voxels)")
        ax.set_ylabel("y (voxels)")
    axes[0].set_title(f"{raw}, z = {z}")
    if probabilities:
        array, inside = _part(container, probabilities, section, voxel_size)
        part = array[inside][0].astype(float)
        part /= 255 if array.dtype == np.uint8 else 1
        shown = axes[1].imshow(
            part, cmap="magma", vmin=0, vmax=1, extent=_extent(inside, voxel_size), alpha=0.85
        )
        fig.colorbar(shown, ax=axes[1], shrink=0.7, label="probability")
        axes[1].set_title(probabilities, fontsize=9)
    overlay = np.zeros(image.shape + (4,), dtype=float)
    handles = []
    for index, dataset in enumerate(labels):
        array, inside = _part(container, dataset, section, voxel_size)
        begin = (inside.offset - section.offset) / voxel_size
        end = (inside.end - section.offset) / voxel_size
        where = (slice(begin[1], end[1]), slice(begin[2], end[2]))
        colour = matplotlib.colors.to_rgba(_COLOURS[index % len(_COLOURS)])
        overlay[where][find_boundaries(array[inside][0], mode="inner")] = colour
        handles.append(matplotlib.patches.Patch(color=colour, label=dataset))
    axes[-1].imshow(overlay, interpolation="nearest", extent=full)
    for ax in axes:
        ax.set_xlim(full[0], full[1])
        ax.set_ylim(full[2], full[3])
    axes[-1].set_title("outlines")
    if handles:
        axes[-1].legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    try:
        return write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)
