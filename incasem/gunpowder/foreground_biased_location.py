import random

import gunpowder as gp
import numpy as np
from skimage.transform import integral_image, integrate


class SamplingError(RuntimeError):
    """No acceptable random location was found within the allowed number of attempts."""


class ForegroundBiasedLocation(gp.RandomLocation):
    """Choose random locations that contain enough known labels, preferring foreground.

    Organelles like nuclear pores or coated pits fill a tiny fraction of a cell; uniform sampling
    would show the network almost only background. A location is:

    * always rejected if fewer than ``min_valid`` of its ``valid_mask`` voxels are 1 (the output
      window lies mostly outside the annotated ROI or inside an excluded region);
    * rejected with probability ``reject_probability`` if fewer than ``min_foreground`` of its
      voxels are labelled foreground (``labels > 0`` and valid), as in the original incasem.

    Both fractions come from integral images built once in ``setup``, so a draw costs a few
    lookups however large the window. gunpowder's own ``RandomLocation`` retries forever when no
    location qualifies; this node raises `SamplingError` after ``max_attempts`` consecutive
    rejections, so an impossible configuration fails with a message instead of hanging.

    Args:

        valid_mask (:class:`ArrayKey`):

            Mask of voxels whose labels are known (1) or unknown (0).

        labels (:class:`ArrayKey`):

            Class ids; foreground is ``> 0``. Same voxel size and ROI as ``valid_mask``.

        min_valid (``float``, optional):

            Minimal fraction of valid voxels in the window of ``valid_mask``. Default: 0.5.

        min_foreground (``float``, optional):

            Foreground fraction below which a location may be rejected. Default: 0.05.

        reject_probability (``float``, optional):

            Probability to reject a location below ``min_foreground``. Default: 0.9.

        max_attempts (``int``, optional):

            Consecutive rejections after which `SamplingError` is raised. Default: 10000.

        source_name (``str``, optional):

            Name of the data source, used in error messages. Default: ``""``.
    """

    def __init__(
        self,
        valid_mask: gp.ArrayKey,
        labels: gp.ArrayKey,
        min_valid: float = 0.5,
        min_foreground: float = 0.05,
        reject_probability: float = 0.9,
        max_attempts: int = 10000,
        source_name: str = "",
    ):
        super().__init__()
        self.valid_mask = valid_mask
        self.labels = labels
        self.min_valid = min_valid
        self.min_foreground = min_foreground
        self.reject_probability = reject_probability
        self.max_attempts = max_attempts
        self.source_name = source_name
        self.attempts = 0
        self.rejected = 0

    def setup(self):
        upstream = self.get_upstream_provider()
        mask_spec = upstream.spec[self.valid_mask].copy()
        labels_spec = upstream.spec[self.labels].copy()
        if mask_spec.roi != labels_spec.roi or mask_spec.voxel_size != labels_spec.voxel_size:
            raise ValueError(
                f"{self.valid_mask} ({mask_spec.roi}) and {self.labels} ({labels_spec.roi}) "
                "must share ROI and voxel size"
            )
        request = gp.BatchRequest({self.valid_mask: mask_spec, self.labels: labels_spec})
        batch = upstream.request_batch(request)
        valid = batch[self.valid_mask].data > 0
        foreground = valid & (batch[self.labels].data > 0)
        self._grid_roi = mask_spec.roi
        self._voxel_size = mask_spec.voxel_size
        dtype = np.uint32 if valid.size < 2**32 else np.uint64
        self._valid_integral = integral_image(valid.astype(dtype)).astype(dtype)
        self._foreground_integral = integral_image(foreground.astype(dtype)).astype(dtype)
        super().setup()

    def _count(self, integral: np.ndarray, roi: gp.Roi) -> int:
        local = (roi - self._grid_roi.offset) / self._voxel_size
        return int(
            integrate(integral, [local.begin], [local.end - gp.Coordinate((1,) * local.dims)])[0]
        )

    def accepts(self, request):
        roi = request[self.valid_mask].roi
        if not self._grid_roi.contains(roi):
            return self._reject(request)
        size = roi.size // int(np.prod(self._voxel_size))
        valid = self._count(self._valid_integral, roi) / size
        if valid < self.min_valid:
            return self._reject(request)
        foreground = self._count(self._foreground_integral, roi) / size
        if foreground < self.min_foreground and random.random() < self.reject_probability:
            return self._reject(request)
        self.attempts = 0
        return True

    def _reject(self, request) -> bool:
        self.attempts += 1
        self.rejected += 1
        if self.attempts >= self.max_attempts:
            window = request[self.valid_mask].roi.shape / self._voxel_size
            raise SamplingError(
                f"{self.source_name or 'source'}: no location with at least "
                f"{self.min_valid:.0%} known labels in a {window} voxel window "
                f"after {self.max_attempts} attempts; lower training.reject.min_valid or enlarge "
                "the annotated ROI / mask"
            )
        return False
