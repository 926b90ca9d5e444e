"""Graph-cut annotation: a few brush strokes on some planes, a 3D label from a minimum cut.

ASEM annotated its hardest organelle (Golgi) this way: the annotator paints organelle and
background strokes on a handful of planes and a graph cut over the whole volume fills in the
rest. Modules: `seeds` (0/1/2 seeds from a dataset, 2D mask files or an array), `unary` (the
pixel classifier on `features` and the gray-value models of `intensity`, fitted to the seeds),
`graph` (the cut of one block, on voxels or SLIC supervoxels, and its boundary band),
`cleanup` (keep the marked objects), `run` (the blockwise command behind ``incasem annotate
graphcut``), `paint` (the napari painter) and `strokes` (simulated strokes for tests and
benchmarks).
"""

from incasem.annotate.run import AnnotationResult, CutSettings, annotate_graphcut
from incasem.annotate.seeds import (
    BACKGROUND,
    ORGANELLE,
    UNMARKED,
    Seeds,
    seeds_from_array,
    seeds_from_dataset,
    seeds_from_planes,
)
from incasem.annotate.strokes import simulate_strokes

__all__ = [
    "BACKGROUND",
    "ORGANELLE",
    "UNMARKED",
    "AnnotationResult",
    "CutSettings",
    "Seeds",
    "annotate_graphcut",
    "seeds_from_array",
    "seeds_from_dataset",
    "seeds_from_planes",
    "simulate_strokes",
]
