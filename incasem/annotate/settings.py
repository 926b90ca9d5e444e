"""The graph cut's settings (`CutSettings`), light to import: ``incasem annotate graphcut``
generates its energy flags from them (`incasem.settings.add_flags`)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from incasem.errors import IncasemError
from incasem.settings import Fraction, Settings, setting

#: The pairwise weight ``lambda`` per unary when none is given. Gray-value models: chosen on the
#: synthetic cell and a Lucchi crop (README). Forest: its -log p costs are sharper; on the
#: benchmark's Lucchi crop (strokes on 3 planes per axis, without the band below) F1 0.808 /
#: 0.810 / 0.800 at 1 / 3 / 6.
DEFAULT_LAMBDA: dict[str, float] = {"gmm": 12.0, "histogram": 12.0, "forest": 3.0}
#: The boundary band (voxels) re-cut with the gray-value model per unary when none is given.
#: Forest: it learns what an organelle is from strokes that keep away from boundaries, so it
#: leaves out the organelle's own membrane (Lucchi labels include it); gray values place the
#: boundary. Width 3 against 2: F1 0.868 / 0.862 on the benchmark's Lucchi crop (3 planes),
#: 0.779 / 0.733 on the tuning crop, 0.865 / 0.838 on the synthetic cell (README,
#: "Graph-cut annotation"; benchmarks/results/graphcut_f1.md).
DEFAULT_REFINE: dict[str, int] = {"gmm": 0, "histogram": 0, "forest": 3}


class CutSettings(Settings):
    """Parameters of the energy and its solver; each field's description says what it means
    (it is also the flag's help). A bad value is one line naming its flag (``--outliers 1.0
    must be a fraction in [0, 1)``).

    ``pairwise_weight`` (``lambda``, cost units per voxel face) and ``refine`` left None take
    the unary's default (`DEFAULT_LAMBDA`: 3 for the forest, 12 for the gray-value models, whose
    costs are flatter; `DEFAULT_REFINE`); ``pairwise_weight`` then holds the weight used,
    `refine_width` the band. ``edge_sigma``: without it, pixel noise (Lucchi: mean neighbour
    difference 16 gray levels) looks like an edge everywhere and membranes hardly stand out.
    ``outliers`` follows the original tool's GMM clean-up; seeds keep their class.
    """

    problem_names = "flag"
    model_config = ConfigDict(extra="forbid", frozen=True)

    pairwise_weight: NonNegativeFloat | None = setting(
        None,
        "pairwise weight lambda, cost units per voxel face (default: 3 with forest, 12 with gmm "
        "or histogram)",
        old=["smoothness", "lambda"],
    )  # fmt: skip
    contrast: PositiveFloat = setting(
        20.0, "gray-value difference scale (sigma) of the pairwise term, gray levels",
        old=["sigma"],
    )  # fmt: skip
    feature_sigma: NonNegativeFloat = setting(
        3.0,
        "Gaussian sigma in voxels (smallest voxel size) of the gray values the gray-value "
        "models and the supervoxels see",
        old=["smooth"],
    )  # fmt: skip
    edge_sigma: NonNegativeFloat = setting(
        1.0, "Gaussian sigma in voxels of the gray values the pairwise term compares",
        old=["edge_smooth"],
    )  # fmt: skip
    model: Literal["forest", "gmm", "histogram"] = setting(
        "forest",
        "unary term: forest = a random forest on filter features (smoothing, edges, Hessian "
        "and structure tensor at 0.7-5 voxels) trained on the seeds, its boundary band re-cut "
        "with gray values (refine); gmm or histogram = one gray-value model per class on the "
        "feature_sigma-smoothed raw (incasem.annotate.unary)",
    )  # fmt: skip
    components: PositiveInt = setting(
        3, "Gaussians per class for gmm and for the boundary band's mixture"
    )
    supervoxels: NonNegativeInt = setting(
        0,
        "cut SLIC supervoxels of about this many voxels instead of voxels (0: voxels)",
        metavar="VOXELS",
    )
    context: NonNegativeInt = setting(16, "voxels each block reads beyond its faces")
    keep_unseeded: bool = setting(
        False, "keep objects that hold no organelle seed (default: drop them)"
    )
    outliers: Fraction = setting(
        0.0,
        "outlier clean-up (gray-value models only): organelle voxels less likely under the "
        "organelle model than this fraction of the organelle seeds become background (e.g. "
        "0.01; 0: off)",
        metavar="FRACTION",
    )  # fmt: skip
    refine: NonNegativeInt | None = setting(
        None,
        "re-cut this many voxels on each side of the result's boundary with a gray-value "
        "mixture (the forest leaves out an organelle's own membrane; default: 3 with forest, 0 "
        "with gmm or histogram)",
        metavar="VOXELS", expects=">= 0 is required (0 turns the band off)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _unary_defaults(self) -> CutSettings:
        """The unary's own pairwise weight when none is given; outliers need a gray model."""
        if self.outliers and self.model == "forest":
            raise IncasemError(
                "--outliers needs a gray-value model (--model gmm or histogram), not forest"
            )
        if self.pairwise_weight is None:  # frozen: set once, here
            object.__setattr__(self, "pairwise_weight", DEFAULT_LAMBDA[self.model])
        return self

    @property
    def refine_width(self) -> int:
        """Voxels of the boundary band re-cut with gray values: ``refine``, or the unary's
        default when it is None."""
        return self.refine if self.refine is not None else DEFAULT_REFINE[self.model]
