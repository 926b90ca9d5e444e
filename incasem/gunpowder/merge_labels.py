import gunpowder as gp
import numpy as np

from incasem.labels import merge_class_ids


class MergeLabels(gp.BatchFilter):
    """Merge several binary label arrays into one array of class ids.

    Data configs name one dataset per organelle with its class id (``{"volumes/labels/er": 1}``);
    a voxel that is non-zero in a dataset gets that dataset's class id, all others are background
    (0). Where datasets overlap, the one listed later wins, so a config can order them by
    priority. An entry without label datasets (a background-only block) gives all zeros.

    Args:

        labels (``dict``, :class:`ArrayKey` -> ``int``):

            The binary (or 0/255) label arrays and the class id each stands for; may be empty.

        output (:class:`ArrayKey`):

            The class-id array to create (uint8).

        reference (:class:`ArrayKey`):

            An array whose ROI and voxel size the output takes (e.g. the valid mask); every
            label array must be provided on that ROI.
    """

    def __init__(self, labels: dict[gp.ArrayKey, int], output: gp.ArrayKey, reference: gp.ArrayKey):
        self.labels = labels
        self.output = output
        self.reference = reference

    def setup(self):
        spec = self.spec[self.reference].copy()
        for key in self.labels:
            if not self.spec[key].roi.contains(spec.roi):
                raise ValueError(f"{key} ({self.spec[key].roi}) does not cover {spec.roi}")
        spec.dtype = np.uint8
        spec.interpolatable = False
        self.provides(self.output, spec)

    def prepare(self, request):
        # Only the ROI: each label dataset comes in its own dtype (int64 with -1 for "not
        # annotated" too); the output's uint8 is what this node makes of them.
        roi = request[self.output].roi
        deps = gp.BatchRequest()
        deps[self.reference] = gp.ArraySpec(roi=roi)
        for key in self.labels:
            deps[key] = gp.ArraySpec(roi=roi)
        return deps

    def process(self, batch, request):
        spec = self.spec[self.output].copy()
        spec.roi = request[self.output].roi
        merged = merge_class_ids(
            ((batch[key].data, class_id) for key, class_id in self.labels.items()),
            spec.roi.shape / spec.voxel_size,
        )
        outputs = gp.Batch()
        outputs[self.output] = gp.Array(merged, spec)
        return outputs
