import gunpowder as gp
import numpy as np

from incasem.labels import not_annotated


class ExcludeValue(gp.BatchFilter):
    """Treat one label value as "not annotated": no loss and no metric there.

    Sparse annotation tools often mark unlabelled voxels inside a painted block with a reserved
    value (e.g. 255). Such voxels are neither organelle nor background; this node sets the mask
    to 0 and the label to 0 wherever the label equals ``value``.

    Args:

        labels (:class:`ArrayKey`):

            The label array to inspect; modified in place.

        value (``int``):

            The label value meaning "not annotated".

        mask (:class:`ArrayKey`):

            The valid mask to zero where ``labels == value``; modified in place. Must have the
            same voxel size as ``labels``.
    """

    def __init__(self, labels: gp.ArrayKey, value: int, mask: gp.ArrayKey):
        self.labels = labels
        self.value = value
        self.mask = mask

    def setup(self):
        self.updates(self.labels, self.spec[self.labels])
        self.updates(self.mask, self.spec[self.mask])

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[self.labels] = request[self.labels].copy()
        deps[self.mask] = request[self.mask].copy()
        return deps

    def process(self, batch, request):
        labels = batch[self.labels]
        mask = batch[self.mask]
        if labels.spec.roi != mask.spec.roi:
            raise ValueError(
                f"{self.labels} ROI {labels.spec.roi} and {self.mask} ROI {mask.spec.roi} differ"
            )
        unknown = not_annotated(labels.data, self.value)
        labels.data = np.where(unknown, 0, labels.data).astype(labels.data.dtype)
        mask.data = np.where(unknown, 0, mask.data).astype(mask.data.dtype)
