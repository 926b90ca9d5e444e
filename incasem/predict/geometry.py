"""Block geometry of a seam-free blockwise prediction.

Three sizes decide whether a blockwise prediction equals a single pass over the whole volume:

* **Write size.** The U-Net is translation-equivariant only for shifts by a multiple of its total
  downsampling factor (8 for three levels of 2x), so blocks must be placed on that grid. The
  write size is therefore the network's output size rounded down to a multiple of the factor
  (204 -> 110 -> writes 104); the few extra output voxels are computed and dropped.
* **Chunk shape = write size.** Two workers writing into one zarr chunk lose data (each rewrites
  the whole chunk), so the output datasets are chunked exactly like the blocks and every block
  starts at the ROI offset plus a multiple of the write size.
* **Read size = the network input.** A block reads its write ROI plus the context the network
  consumes (47 voxels per side for the default U-Net) and the dropped output voxels, so every
  output voxel is computed from exactly the input a single pass would see.

Sizes are in voxels and ROIs in nm; axis order is z, y, x throughout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.errors import IncasemError
from incasem.torch.models import shapes


@dataclass(frozen=True)
class BlockLayout:
    """How a ROI is cut into blocks for one network and one input size.

    Attributes:
        voxel_size: nm, (z, y, x).
        input_shape: network input per block in voxels (z, y, x).
        output_shape: network output per block in voxels.
        write_shape: voxels written per block (= output chunk shape); a multiple of
            ``grid`` and at most ``output_shape``.
        context: voxels of input before the first output voxel, per axis.
        grid: total downsampling factor per axis; block origins lie on this grid.
    """

    voxel_size: Coordinate
    input_shape: Coordinate
    output_shape: Coordinate
    write_shape: Coordinate
    context: Coordinate
    grid: Coordinate

    @classmethod
    def for_network(
        cls,
        input_shape: Sequence[int],
        voxel_size: Sequence[int],
        downsample_factors: Sequence[Sequence[int]] = shapes.DEFAULT_DOWNSAMPLE_FACTORS,
        head_kernel_size: int = 3,
    ) -> BlockLayout:
        """The layout for a U-Net with these downsample factors and a per-block input size.

        Args:
            input_shape: network input per block, voxels (z, y, x); must be a valid size.
            voxel_size: nm (z, y, x).
            downsample_factors: per-level max-pool factors (z, y, x), top level first.
            head_kernel_size: edge of the final convolution, voxels.

        Raises `IncasemError` if the input size is invalid for the network or its output is
        smaller than one grid step.
        """
        input_shape = Coordinate(int(s) for s in input_shape)
        try:
            output_shape = Coordinate(
                shapes.output_shape(input_shape, downsample_factors, head_kernel_size)
            )
            context = Coordinate(shapes.context(downsample_factors, head_kernel_size))
        except ValueError as e:
            raise IncasemError(f"prediction input size {list(input_shape)}: {e}") from None
        grid = Coordinate(shapes.total_downsampling(downsample_factors))
        write_shape = (output_shape // grid) * grid
        if min(write_shape) < 1:
            smallest = shapes.input_shape_for_output(grid, downsample_factors, head_kernel_size)
            raise IncasemError(
                f"prediction input size {list(input_shape)} gives an output of "
                f"{list(output_shape)} voxels, smaller than the {list(grid)}-voxel block grid "
                f"the network needs for seam-free tiling; use an input of at least "
                f"{list(smallest)}"
            )
        return cls(
            voxel_size=Coordinate(voxel_size),
            input_shape=input_shape,
            output_shape=output_shape,
            write_shape=write_shape,
            context=context,
            grid=grid,
        )

    @property
    def block_read_roi(self) -> Roi:
        """Read ROI of a block relative to its write origin, nm (daisy's ``read_roi``)."""
        return Roi(-self.context * self.voxel_size, self.input_shape * self.voxel_size)

    @property
    def block_write_roi(self) -> Roi:
        """Write ROI of a block relative to its origin, nm (daisy's ``write_roi``)."""
        return Roi((0,) * len(self.write_shape), self.write_shape * self.voxel_size)

    def total_read_roi(self, roi: Roi) -> Roi:
        """ROI (nm) that daisy tiles: ``roi`` grown by the read margins of one block."""
        before = -self.block_read_roi.begin
        after = self.block_read_roi.end - self.block_write_roi.end
        return roi.grow(before, after)

    def read_roi_for(self, write_roi: Roi) -> Roi:
        """Network input ROI (nm) of the block whose write ROI starts at ``write_roi.begin``."""
        return self.block_read_roi.shift(write_roi.begin)

    def grid_shape(self, roi: Roi) -> Coordinate:
        """Number of blocks along each axis needed to cover ``roi`` (nm)."""
        shape_voxels = roi.shape / self.voxel_size
        return Coordinate(-(-s // w) for s, w in zip(shape_voxels, self.write_shape, strict=True))

    def num_blocks(self, roi: Roi) -> int:
        """Number of blocks covering ``roi`` (nm)."""
        return int(np.prod(self.grid_shape(roi)))

    def write_rois(self, roi: Roi) -> Iterator[Roi]:
        """Write ROIs (nm) of all blocks covering ``roi``, clipped to it, in z, y, x order.

        The same tiling daisy produces with ``fit="overhang"``: origins at ``roi.begin`` plus
        multiples of the write size.
        """
        step = self.write_shape * self.voxel_size
        for index in np.ndindex(*self.grid_shape(roi)):
            begin = roi.begin + Coordinate(index) * step
            yield Roi(begin, step).intersect(roi)

    def describe(self) -> dict[str, list[int]]:
        """The layout as JSON-serialisable lists (voxels, nm for the voxel size)."""
        return {
            "voxel_size_nm": list(self.voxel_size),
            "input_shape_voxels": list(self.input_shape),
            "output_shape_voxels": list(self.output_shape),
            "write_shape_voxels": list(self.write_shape),
            "context_voxels": list(self.context),
            "grid_voxels": list(self.grid),
        }

    @classmethod
    def from_description(cls, description: dict[str, list[int]]) -> BlockLayout:
        """Inverse of `describe` (how the layout travels to worker processes)."""
        return cls(
            voxel_size=Coordinate(description["voxel_size_nm"]),
            input_shape=Coordinate(description["input_shape_voxels"]),
            output_shape=Coordinate(description["output_shape_voxels"]),
            write_shape=Coordinate(description["write_shape_voxels"]),
            context=Coordinate(description["context_voxels"]),
            grid=Coordinate(description["grid_voxels"]),
        )
