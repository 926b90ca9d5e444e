import gunpowder as gp
import numpy as np


class ValidMask(gp.BatchFilter):
    """Create the mask of voxels whose labels are known: inside the annotated ROI and inside
    every given mask.

    Outside the annotated ROI labels are *unknown*, not background: the raw there is real
    context for the network, but no loss may be computed on it. (The original incasem padded
    labels with 0 and the mask with 1, teaching the network that all context is certain
    background.) The created array covers ``roi`` grown by ``padding`` so that random locations
    may put the output window across the ROI's border; it is 0 in that margin.

    Args:

        output (:class:`ArrayKey`):

            The uint8 mask to create (1 = labels known).

        roi (:class:`Roi`):

            The annotated ROI in world units (nm).

        voxel_size (:class:`Coordinate`):

            Voxel size of the mask (nm), the labels' voxel size.

        masks (``list`` of :class:`ArrayKey`, optional):

            Arrays whose zero voxels are excluded too (e.g. a cell mask). They must be
            provided at least inside ``roi``; they are only requested there. Default: none.

        padding (:class:`Coordinate`, optional):

            How far (nm) beyond ``roi`` the mask is provided, filled with 0. Default: 0.
    """

    def __init__(
        self,
        output: gp.ArrayKey,
        roi: gp.Roi,
        voxel_size: gp.Coordinate,
        masks: list[gp.ArrayKey] | None = None,
        padding: gp.Coordinate | None = None,
    ):
        self.output = output
        self.roi = roi
        self.voxel_size = gp.Coordinate(voxel_size)
        self.masks = list(masks or [])
        self.padding = gp.Coordinate(padding or (0,) * roi.dims)

    def setup(self):
        for key in self.masks:
            if not self.spec[key].roi.contains(self.roi):
                raise ValueError(
                    f"mask {key} ({self.spec[key].roi}) does not cover the annotated ROI {self.roi}"
                )
        spec = gp.ArraySpec(
            roi=self.roi.grow(self.padding, self.padding),
            voxel_size=self.voxel_size,
            interpolatable=False,
            dtype=np.uint8,
        )
        self.provides(self.output, spec)

    def prepare(self, request):
        deps = gp.BatchRequest()
        inside = request[self.output].roi.intersect(self.roi)
        if not inside.empty:
            for key in self.masks:
                deps[key] = gp.ArraySpec(roi=inside)
        return deps

    def process(self, batch, request):
        roi = request[self.output].roi
        spec = self.spec[self.output].copy()
        spec.roi = roi
        valid = np.zeros(roi.shape / self.voxel_size, dtype=np.uint8)
        inside = roi.intersect(self.roi)
        if not inside.empty:
            local = (inside - roi.offset) / self.voxel_size
            known = np.ones(inside.shape / self.voxel_size, dtype=bool)
            for key in self.masks:
                known &= batch[key].data > 0
            valid[local.to_slices()] = known
        outputs = gp.Batch()
        outputs[self.output] = gp.Array(valid, spec)
        return outputs
