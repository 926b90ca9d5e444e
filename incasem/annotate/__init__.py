"""Graph-cut annotation: a few brush strokes on some planes, a 3D label from a minimum cut.

ASEM annotated its hardest organelle (Golgi) this way: the annotator paints organelle and
background strokes on a handful of planes and a graph cut over the whole volume fills in the
rest. Modules: `seeds` (0/1/2 seeds from a dataset, 2D mask files or an array), `unary` (the
pixel classifier on `features` and the gray-value models of `intensity`, fitted to the seeds),
`graph` (the cut of one block, on voxels or SLIC supervoxels, and its boundary band),
`cleanup` (keep the marked objects), `settings` (the cut's parameters), `run` (the blockwise
command behind ``incasem annotate graphcut``), `paint` (the napari painter) and `strokes`
(simulated strokes for tests and benchmarks). Names are resolved on first use, so that the
command line's parser (which reads `CutSettings`) does not import the cut.
"""

from __future__ import annotations

from incasem.lazy import lazy_exports

_EXPORTS = {
    "BACKGROUND": "incasem.annotate.seeds",
    "ORGANELLE": "incasem.annotate.seeds",
    "UNMARKED": "incasem.annotate.seeds",
    "AnnotationResult": "incasem.annotate.run",
    "CutSettings": "incasem.annotate.settings",
    "Seeds": "incasem.annotate.seeds",
    "annotate_graphcut": "incasem.annotate.run",
    "seeds_from_array": "incasem.annotate.seeds",
    "seeds_from_dataset": "incasem.annotate.seeds",
    "seeds_from_planes": "incasem.annotate.seeds",
    "simulate_strokes": "incasem.annotate.strokes",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
