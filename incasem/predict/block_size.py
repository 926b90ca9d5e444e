"""Choosing the network input per block: the default size, the one asked for, or ``auto``.

Blockwise prediction with a valid U-Net wastes work at every block: each block recomputes 47
voxels of context per side, and the output (``s - 94``, which is 6 mod 8) is cut to a multiple of
the downsampling factor 8 so that blocks tile seamlessly. Both losses shrink with the block:
per written voxel a 204³ block feeds 7.5 input voxels through the network, a 404³ block 2.4
(measured on CPU with 4 feature maps: a 404³ forward pass gives 1.45 times the output voxels per
second of a 244³ one). So the fastest prediction uses the largest block that fits in memory, and
that is what ``auto`` picks, within a memory budget per worker and never larger than the ROIs
need.

The memory of a forward pass is not something torch reports before running it, so we estimate
it from a fit to peak resident memory measured on CPU for this architecture (``fmap_inc_factor``
2, three 2×2×2 levels; 4 to 16 feature maps, 204³ to 404³): ``(16 + 4·fmaps)`` float32 values
per input voxel plus 0.5 GiB of runtime, which overestimates every measurement by 5–60 %. The
budget comes from the machine's *total* memory (not what happens to be free), so ``auto`` gives
the same blocks on the same machine every time and a resumed prediction finds its layout again.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from incasem.errors import IncasemError
from incasem.predict.geometry import BlockLayout
from incasem.torch.models import shapes

if TYPE_CHECKING:
    from incasem.io.data_config import DataEntry
    from incasem.predict.settings import PredictionSettings
    from incasem.torch.checkpoint import ModelCard

logger = logging.getLogger("incasem.predict")

#: Smallest default network output per axis (voxels): blocks smaller than the original's 110
#: spend most of their time on context.
DEFAULT_MIN_OUTPUT = 110

#: Fraction of the machine's memory (RAM for CPU workers, the GPU's for GPU workers) that the
#: forward passes of all workers sharing it may use together.
MEMORY_FRACTION = {"cpu": 0.5, "cuda": 0.8}

RUNTIME_BYTES = 512 * 2**20


def forward_bytes(input_shape: Sequence[int], num_fmaps: int) -> int:
    """Estimated peak memory (bytes) of one forward pass of an input of ``input_shape`` voxels
    (z, y, x) through an incasem U-Net with ``num_fmaps`` top-level feature maps."""
    return int(math.prod(input_shape) * 4 * (16 + 4 * num_fmaps) + RUNTIME_BYTES)


def memory_budget(device: str, workers_sharing: int) -> int:
    """Bytes one worker's forward pass may use: a fixed fraction of the total memory of the CPU
    or of GPU 0 (as CUDA numbers them here), split between the workers sharing it."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise IncasemError(
                "input_size_voxels auto sizes blocks for the GPU, but no GPU is visible to "
                "the scheduler here; give input_size_voxels explicitly"
            )
        total = torch.cuda.get_device_properties(0).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * MEMORY_FRACTION.get(device, MEMORY_FRACTION["cpu"]) / workers_sharing)


def fit_input_to_roi(
    input_shape: Sequence[int],
    roi_shapes: Sequence[Sequence[int]],
    downsample_factors: shapes.Factors,
    head_kernel_size: int,
) -> list[int]:
    """``input_shape`` (voxels, z, y, x), cut along each axis where its output is longer than
    the largest ROI (``roi_shapes``, voxels) needs: the smallest valid input whose output covers
    that ROI there. A 6-section ROI of serial-section data then gets blocks a few sections deep
    instead of the training input's 100-odd sections of context."""
    output = shapes.output_shape(input_shape, downsample_factors, head_kernel_size)
    extent = [max(shape[axis] for shape in roi_shapes) for axis in range(3)]
    # blocks tile on the grid of the total downsampling: no block writes less than one step
    grid = shapes.total_downsampling(downsample_factors)
    needed = shapes.input_shape_for_output(
        [max(min(o, e), g) for o, e, g in zip(output, extent, grid, strict=True)],
        downsample_factors,
        head_kernel_size,
    )
    return [min(size, need) for size, need in zip(input_shape, needed, strict=True)]


def largest_input_shape(
    budget_bytes: int,
    num_fmaps: int,
    downsample_factors: shapes.Factors,
    head_kernel_size: int,
    roi_shapes: Sequence[Sequence[int]],
    minimum: Sequence[int],
) -> list[int]:
    """The largest valid input (voxels, z, y, x) whose forward pass fits ``budget_bytes``, then
    cut per axis so that its blocks tile the largest ROI (``roi_shapes``, voxels) evenly with
    the fewest blocks.

    It grows every axis in turn by one step of its grid while the forward pass fits, except
    axes whose blocks already cover the ROI: a thin ROI (a few sections of serial-section data)
    gets thin, wide blocks rather than cubes that compute context nobody asked for. ``minimum``
    (the size that covers the training output) is cut to what the ROI needs along each axis
    first (`fit_input_to_roi`).

    Raises `IncasemError` when not even that minimum fits the budget.
    """
    minimum = fit_input_to_roi(minimum, roi_shapes, downsample_factors, head_kernel_size)
    if forward_bytes(minimum, num_fmaps) > budget_bytes:
        raise IncasemError(
            f"a block of {list(minimum)} voxels needs about "
            f"{forward_bytes(minimum, num_fmaps) / 2**30:.1f} GiB per worker, more than the "
            f"{budget_bytes / 2**30:.1f} GiB available to each; use fewer workers or give "
            "input_size_voxels explicitly"
        )

    def layout(input_shape: Sequence[int]) -> BlockLayout:
        return BlockLayout.for_network(input_shape, (1,) * 3, downsample_factors, head_kernel_size)

    periods = layout(minimum).grid
    extent = [max(shape[axis] for shape in roi_shapes) for axis in range(3)]
    best = list(minimum)
    growing = True
    while growing:
        growing = False
        for axis in range(3):
            if layout(best).write_shape[axis] >= extent[axis]:
                continue
            grown = list(best)
            grown[axis] += periods[axis]
            if forward_bytes(grown, num_fmaps) <= budget_bytes:
                best, growing = grown, True
    # Tile the largest ROI evenly: as few blocks per axis as the budget allows, each just large
    # enough. Otherwise a 512-voxel axis with 352-voxel blocks computes 704 voxels to keep 512.
    write = []
    for e, most, period in zip(extent, layout(best).write_shape, periods, strict=True):
        blocks = math.ceil(e / most)
        write.append(period * math.ceil(e / blocks / period))
    balanced = shapes.input_shape_for_output(write, downsample_factors, head_kernel_size)
    return [
        max(low, min(size, even)) for low, size, even in zip(minimum, best, balanced, strict=True)
    ]


def default_input_size(card_output: list[int], downsample_factors: Any, head: int) -> list[int]:
    """Smallest valid input (voxels, z y x) whose output covers both the training output and
    `DEFAULT_MIN_OUTPUT`."""
    wanted = [max(int(o), DEFAULT_MIN_OUTPUT) for o in card_output]
    return list(shapes.input_shape_for_output(wanted, downsample_factors, head))


def block_layout(
    settings: PredictionSettings,
    network: Any,
    card: ModelCard,
    entries: list[DataEntry],
    device: str,
    gpus: list[int] | None,
) -> BlockLayout:
    """The block geometry: the input size asked for, the default one, or ``auto``'s choice;
    warns when blocks would spend most of their compute on context."""
    minimum_input = default_input_size(
        card.output_size_voxels, network.downsample_factors, network.head_kernel_size
    )
    if settings.input_size_voxels == "auto":
        sharing = math.ceil(settings.num_workers / len(gpus)) if gpus else settings.num_workers
        input_size = largest_input_shape(
            memory_budget(device, sharing),
            network.num_fmaps,
            network.downsample_factors,
            network.head_kernel_size,
            [entry.shape for entry in entries],
            minimum_input,
        )
        logger.info("input_size_voxels auto: %s per block", input_size)
    else:
        input_size = settings.input_size_voxels or minimum_input
    layout = BlockLayout.for_network(
        input_size, card.voxel_size, network.downsample_factors, network.head_kernel_size
    )
    efficiency = math.prod(layout.write_shape) / math.prod(layout.input_shape)
    covered = all(
        w >= max(entry.shape[axis] for entry in entries)
        for axis, w in enumerate(layout.write_shape)
    )
    if efficiency < 0.05 and not covered:  # a larger block would compute less context
        logger.warning(
            "blocks of %s voxels write only %s each (%.1f %% of what they read): prediction "
            "will be slow; use a larger input_size_voxels or 'auto'",
            list(layout.input_shape),
            list(layout.write_shape),
            100 * efficiency,
        )
    if settings.output_size_voxels is not None and list(layout.output_shape) != list(
        settings.output_size_voxels
    ):
        raise IncasemError(
            f"output_size_voxels {settings.output_size_voxels} does not match the network: an "
            f"input of {list(layout.input_shape)} gives {list(layout.output_shape)}"
        )
    return layout
