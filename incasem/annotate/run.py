"""Graph-cut annotation of an ROI: seeds in, a training-ready label dataset and mask out.

Steps: read and check the seeds (sparse, see `incasem.annotate.seeds`), fit the unary term to
the seeds (a pixel classifier or gray-value models, `incasem.annotate.unary`), cut block by
block, keep the seeded objects, write.

Why blocks: one voxel node costs about 270 bytes during the cut, so a 512³ ROI as one voxel graph
would need about 36 GB. Each block (128³ voxels) is cut on its own together with a context
margin (default 16 voxels) that it reads but does not write; its seeds and the global unary
term make each block's cut agree with its neighbours' except within a few voxels of where a
boundary passes a block face far from any edge. Peak memory is then one block graph per
worker (1.3 GB for 160³ voxels, whatever the ROI) plus, in the driver, the sparse seeds and the
final clean-up (about 6 bytes per ROI voxel; measured on a 512³ ROI: driver 1.1 GB, driver plus
one worker 1.6 GB, benchmarks/results/graphcut_memory.md), and blocks run in parallel worker
processes with daisy's progress bar (`incasem.blockwise`). With ``supervoxels`` each block is
first split into SLIC supervoxels, which shrinks the graph a few hundred times.

Outputs are staged (`incasem.io.staging`): the label dataset (uint8 0/1 over the ROI) and
the mask (uint8, 1 inside the ROI, 0 elsewhere in the raw dataset's extent, so training ignores
whatever lies outside the annotated box) appear under their names only when both are complete.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.annotate.cleanup import keep_seeded_objects
from incasem.annotate.graph import boundary_band_seeds, cut_supervoxels, cut_voxels, smoothed
from incasem.annotate.region import annotation_entry, fill_roi, resolve_roi
from incasem.annotate.seeds import (
    ORGANELLE,
    Seeds,
    check_seeds,
    load_seeds,
    save_seeds,
    seeds_from_array,
    seeds_from_dataset,
    seeds_from_planes,
)
from incasem.annotate.settings import CutSettings
from incasem.annotate.unary import Unary, fit_forest, fit_intensity_unary
from incasem.blockwise import run_in_blocks
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, open_array
from incasem.io.roi import format_roi_voxels
from incasem.io.staging import check_new_dataset, staged_dataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotationResult:
    """What `annotate_graphcut` wrote.

    Attributes:
        labels: ``container/dataset`` of the label dataset.
        mask: ``container/dataset`` of the mask.
        entry: the data-config entry (name -> dict) describing the annotated ROI.
        organelle_fraction: fraction of ROI voxels labelled organelle.
        seed_counts: organelle and background seed voxels used.
    """

    labels: str
    mask: str
    entry: dict[str, dict[str, Any]]
    organelle_fraction: float
    seed_counts: tuple[int, int]


@dataclass(frozen=True)
class _Energy:
    """The fitted terms a block needs: the unary, the gray-value unary that re-cuts the
    boundary band (None without ``refine``) and the outlier clean-up's cost limit (or None)."""

    unary: Unary
    boundary: Unary | None = None
    outlier_cost: float | None = None


@dataclass(frozen=True)
class _CutBlock:
    """Cuts one block (read with context, clipped to the ROI) and writes its inner part.

    Holds paths and numbers only, so that workers rebuild it from JSON: the ROI (nm), the seeds
    file (`save_seeds`) and the settings; each process loads the seeds and fits the energy once
    (`fitted`; the fit is seeded, so every process fits the same terms as the driver).
    """

    container: str
    raw: str
    output: str
    roi_offset: tuple[int, int, int]
    roi_shape: tuple[int, int, int]
    seeds_file: str
    settings: CutSettings = field(default_factory=CutSettings)

    @property
    def roi(self) -> Roi:
        """The annotated ROI (nm)."""
        return Roi(self.roi_offset, self.roi_shape)

    @property
    def fitted(self) -> tuple[Seeds, _Energy]:
        """The seeds and the energy fitted to them (`fitted_energy`, once per process)."""
        return fitted_energy(
            self.container, self.raw, self.roi_offset, self.roi_shape, self.seeds_file,
            self.settings,
        )  # fmt: skip

    def __call__(self, block: Any) -> None:
        raw_array = open_array(self.container, self.raw)
        out = open_array(self.container, self.output, "r+")
        voxel_size = raw_array.voxel_size
        seeds_of_roi, energy = self.fitted
        read = block.read_roi.intersect(self.roi)
        margin = Coordinate((energy.unary.margin,) * 3) * voxel_size
        wide = read.grow(margin, margin).intersect(self.roi)
        wide_raw = np.asarray(raw_array[wide])
        begin, size = (read.offset - wide.offset) / voxel_size, read.shape / voxel_size
        interior = tuple(slice(b, b + n) for b, n in zip(begin, size, strict=True))
        raw = wide_raw[interior]
        start = (read.offset - self.roi.offset) / voxel_size
        seeds = seeds_of_roi.dense(start, raw.shape)
        costs = energy.unary.costs(wide_raw, interior, voxel_size)
        edges = smoothed(raw, self.settings.edge_sigma, voxel_size)
        pairwise = (self.settings.pairwise_weight, self.settings.contrast, tuple(voxel_size))
        if self.settings.supervoxels:
            image = smoothed(raw, self.settings.feature_sigma, voxel_size)
            organelle = cut_supervoxels(
                edges, costs, seeds, *pairwise, self.settings.supervoxels, image
            )
        else:
            organelle = cut_voxels(edges, costs, seeds, *pairwise)
        if energy.boundary is not None:
            band = boundary_band_seeds(organelle, seeds, self.settings.refine_width)
            gray = energy.boundary.costs(wide_raw, interior, voxel_size)
            organelle = cut_voxels(edges, gray, band, *pairwise)
        if energy.outlier_cost is not None:
            organelle &= ~((costs[0] > energy.outlier_cost) & (seeds != ORGANELLE))
        begin = (block.write_roi.offset - read.offset) / voxel_size
        end = begin + block.write_roi.shape / voxel_size
        inner = tuple(slice(b, e) for b, e in zip(begin, end, strict=True))
        out[block.write_roi] = organelle[inner].astype(np.uint8)


@functools.lru_cache(maxsize=1)
def fitted_energy(
    container: str,
    raw: str,
    roi_offset: tuple[int, int, int],
    roi_shape: tuple[int, int, int],
    seeds_file: str,
    settings: CutSettings,
) -> tuple[Seeds, _Energy]:
    """The seeds in ``seeds_file`` (`save_seeds`) and the energy fitted to them over the ROI
    ``roi_offset``/``roi_shape`` (nm, z, y, x) of ``container/raw``; kept for the next call with
    the same arguments, so a process fits once (the driver before its blocks, each worker
    before its first block; the fit is seeded, so they all fit the same terms)."""
    seeds = load_seeds(seeds_file)
    raw_array = open_array(container, raw)
    return seeds, _fit_energy(raw_array, Roi(roi_offset, roi_shape), seeds, settings)


def _fit_energy(raw_array: Any, roi: Roi, seeds: Seeds, settings: CutSettings) -> _Energy:
    """The terms fitted to the seeds: the unary, the boundary band's gray-value unary (with
    ``refine``) and the outlier clean-up's cost limit (with ``outliers``)."""
    if settings.model == "forest":
        logger.info("annotate: training the pixel classifier on the seeds")
        unary = fit_forest(raw_array, roi, seeds)
        if not settings.refine_width:
            return _Energy(unary)
        mixture, _ = fit_intensity_unary(
            raw_array, roi, seeds, "gmm", settings.components, settings.feature_sigma
        )
        return _Energy(unary, mixture)
    unary, organelle_values = fit_intensity_unary(
        raw_array, roi, seeds, settings.model, settings.components, settings.feature_sigma
    )
    boundary = unary if settings.refine_width else None
    if settings.outliers <= 0:
        return _Energy(unary, boundary)
    seed_costs = unary.model.costs(organelle_values)[0]
    return _Energy(unary, boundary, float(np.quantile(seed_costs, 1 - settings.outliers)))


def _load_seeds(
    seeds: str | os.PathLike | np.ndarray,
    container: Path,
    raw_array: Any,
    roi: Roi,
    roi_text: str,
) -> tuple[Seeds, str]:
    """The seeds inside ``roi`` (nm) from an array, a folder of plane files or a dataset, and
    a name for where they came from; checked to hold both classes."""
    voxel_size = raw_array.voxel_size
    if isinstance(seeds, np.ndarray):
        source = "seed array"
        shape = roi.shape / voxel_size
        if tuple(seeds.shape) != tuple(shape):
            raise IncasemError(
                f"{source}: shape {list(seeds.shape)} differs from the ROI {roi_text}"
            )
        loaded = seeds_from_array(seeds, source)
    elif Path(seeds).is_dir():
        loaded = seeds_from_planes(seeds, roi, voxel_size, raw_array.roi)
        source = str(seeds)
    else:
        loaded = seeds_from_dataset(container, str(seeds), roi, voxel_size)
        source = f"{container}/{seeds}"
    check_seeds(loaded, source, roi_text)
    return loaded, source


def _output_names(
    container: Path, output: str, mask: str | None, overwrite: bool
) -> tuple[str, str]:
    """The label and mask datasets to write (mask default ``volumes/masks/<output's name>``),
    refused if they are the same or exist without ``overwrite``."""
    output = output.strip("/")
    mask = (mask or f"volumes/masks/{output.rsplit('/', 1)[-1]}").strip("/")
    if mask == output:
        raise IncasemError(f"the mask and the labels cannot both be {container}/{output}")
    check_new_dataset(container, output, overwrite)
    check_new_dataset(container, mask, overwrite)
    return output, mask


def _provenance(
    raw: str, source: str, start: Any, shape: Any, settings: CutSettings
) -> dict[str, Any]:
    """The outputs' ``incasem_annotate`` attributes: raw, seeds, ROI (voxels) and the cut's
    settings, with the pairwise weight and boundary band it used."""
    return {
        "incasem_annotate": {
            "method": "graphcut",
            "raw": raw,
            "seeds": source,
            "roi_offset_voxels": list(start),
            "roi_shape_voxels": list(shape),
            **settings.model_dump(),
            "refine": settings.refine_width,
        }
    }


def annotate_graphcut(
    container: str | os.PathLike,
    raw: str,
    seeds: str | os.PathLike | np.ndarray,
    output: str,
    mask: str | None = None,
    roi_offset: Any = None,
    roi_shape: Any = None,
    settings: CutSettings | None = None,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> AnnotationResult:
    """Label an organelle in an ROI from sparse seeds by a graph cut and write it for training.

    Args:
        container: the ``.zarr`` container holding ``raw``; outputs are written into it.
        raw: the gray-value dataset (z, y, x).
        seeds: a seeds dataset in ``container`` (0 unmarked, 1 organelle, 2 background), a
            folder of 2D masks named ``<axis>_<index>.png|tif`` (see `incasem.annotate.seeds`),
            or a (z, y, x) array over the ROI such as a napari Labels layer's ``data``.
        output: the label dataset to write (uint8 0/1 over the ROI), e.g.
            ``volumes/labels/golgi``.
        mask: the mask dataset to write (uint8, 1 in the ROI, over the raw dataset's extent);
            default ``volumes/masks/<output's last name>``.
        roi_offset: ROI start in voxels (z, y, x), i.e. world nm / voxel size; with
            ``roi_shape``; default the whole raw dataset.
        roi_shape: ROI size in voxels (z, y, x).
        settings: energy and solver parameters (`CutSettings`).
        num_workers: worker processes for the blocks (0: in this process).
        overwrite: replace existing outputs (only once the new ones are complete).
        progress: show the blocks' progress bar.

    Raises:
        IncasemError: one line for a bad ROI, seeds with only one class, no seeds in the ROI,
            seed files outside the ROI, an existing output without ``overwrite``.
    """
    settings = settings or CutSettings()
    container = Path(container)
    output, mask = _output_names(container, output, mask, overwrite)
    raw_array = open_array(container, raw)
    if len(raw_array.shape) != 3:
        raise IncasemError(f"{container}/{raw}: need a 3D dataset, not shape {raw_array.shape}")
    voxel_size = raw_array.voxel_size
    roi = resolve_roi(raw_array, f"{container}/{raw}", roi_offset, roi_shape)
    start, shape = roi.offset / voxel_size, roi.shape / voxel_size
    roi_text = format_roi_voxels(start, shape) + " (voxels)"

    loaded, source = _load_seeds(seeds, container, raw_array, roi, roi_text)
    counts = loaded.counts()
    logger.info(
        "annotate: %d organelle and %d background seed voxels (%.3f %% of the ROI %s)",
        *counts,
        100 * sum(counts) / np.prod(shape),
        roi_text,
    )
    attrs = _provenance(raw, source, start, shape, settings)
    attrs |= carried_voxel_size_attrs(container, raw)
    raw_shape = raw_array.roi.shape / voxel_size
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(
            tempfile.TemporaryDirectory(prefix=".incasem-seeds-", dir=container)
        )
        seeds_file = save_seeds(loaded, Path(folder) / "seeds.npz")
        where = (str(container), raw, tuple(roi.offset), tuple(roi.shape))
        fitted_energy(*where, seeds_file, settings)  # before any output exists
        labels = stack.enter_context(staged_dataset(
            container, output, shape, voxel_size, roi.offset, np.uint8, overwrite=overwrite,
            attrs=attrs,
        ))  # fmt: skip
        mask_out = stack.enter_context(staged_dataset(
            container, mask, raw_shape, voxel_size, raw_array.roi.offset, np.uint8,
            overwrite=overwrite, attrs=attrs,
        ))  # fmt: skip
        run_in_blocks(
            _CutBlock(*where[:2], labels.staging_name, *where[2:], seeds_file, settings),
            roi,
            None,
            voxel_size,
            context=settings.context,
            output=labels.array,
            num_workers=num_workers,
            name="graphcut",
            # A max-flow on a hard block (weak edges, few seeds) takes minutes on a busy machine:
            # the default budget (10 s per megavoxel) killed such a block in the benchmarks.
            seconds_per_megavoxel=60.0,
            progress=progress,
        )
        organelle = np.asarray(labels.array[roi]) != 0
        if not settings.keep_unseeded:
            organelle = keep_seeded_objects(organelle, loaded)
            labels.array[roi] = organelle.view(np.uint8)
        fraction = float(organelle.mean())
        del organelle
        fill_roi(mask_out.array, roi)

    entry = annotation_entry(container, raw_array, roi, raw, output, mask)
    return AnnotationResult(f"{container}/{output}", f"{container}/{mask}", entry, fraction, counts)
