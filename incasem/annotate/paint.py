"""The painter behind ``incasem annotate paint``: napari with the raw ROI, a seeds layer to paint,
save and resume, and the graph cut one button away.

ASEM's ground truth for hard organelles came from such a loop (the original's VolumeAnnotator):
paint organelle and background strokes on a few planes, cut, look at the result, paint where it
is wrong, cut again. Here every piece is the library's own: seeds are read and written as a
dataset of the container (0 unmarked, 1 organelle, 2 background; `incasem.annotate.seeds`), the
cut is `annotate_graphcut` on the ROI with the painted array, and its outputs are the same
training-ready label and mask datasets the command writes.

Layers live in world coordinates (nm, z, y, x: scale = voxel size, translate = ROI offset), so
they line up with any other layer a user adds; napari's "transpose" and "roll" buttons show the
ROI along any axis, and its 3D view shows the result. The raw ROI is read lazily (dask over
zarr), so a large ROI opens at once. Saving replaces the seeds dataset only once the new copy is
complete (`incasem.io.staging`); the cut replaces an existing label dataset only with
``overwrite`` (or once this painter wrote it itself).

napari and a Qt binding are an optional extra: ``pip install -e ".[gui]"``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from incasem.annotate.region import annotation_entry, fill_roi, resolve_roi
from incasem.annotate.run import AnnotationResult, annotate_graphcut
from incasem.annotate.seeds import BACKGROUND, ORGANELLE
from incasem.annotate.settings import CutSettings
from incasem.errors import IncasemError
from incasem.io import carried_voxel_size_attrs, list_datasets, open_array
from incasem.io.arrays import read_padded
from incasem.io.budget import check_memory
from incasem.io.roi import format_roi_voxels
from incasem.io.staging import staged_dataset

logger = logging.getLogger(__name__)

GUI_HINT = 'the painter needs napari and Qt: pip install -e ".[gui]"'
#: Seed colours: organelle green, background magenta (RGBA).
SEED_COLOURS = {
    None: (0.0, 0.0, 0.0, 0.0),
    ORGANELLE: (0.2, 1.0, 0.2, 1.0),
    BACKGROUND: (1.0, 0.2, 1.0, 1.0),
}


def import_napari() -> Any:
    """napari, or `IncasemError` saying how to install it."""
    try:
        import napari
    except ImportError:
        raise IncasemError(GUI_HINT) from None
    return napari


@dataclass
class Painter:
    """A painter session: the viewer, its layers and the datasets they come from and go to.

    Attributes:
        container: the ``.zarr`` container.
        raw: raw dataset (z, y, x).
        seeds: seeds dataset the strokes are saved to and resumed from.
        output: label dataset the cut writes (its mask goes to ``volumes/masks/<name>``).
        roi: the annotated ROI, world nm.
        voxel_size: the raw's voxel size, nm (z, y, x): the grid of every layer and output.
        settings: the cut's parameters.
        overwrite: replace an ``output`` that existed before this session.
        viewer: the napari viewer.
        results: what each Segment of this session wrote.
    """

    container: Path
    raw: str
    seeds: str
    output: str
    roi: Roi
    voxel_size: Coordinate
    settings: CutSettings
    overwrite: bool
    viewer: Any
    results: list[AnnotationResult] = field(default_factory=list)
    #: the napari Labels layer the seeds are painted on.
    seeds_layer: Any = None
    #: the dock widget (magicgui Container: paint class, lambda, Save seeds, Segment).
    controls: Any = None

    def save_seeds(self) -> str:
        """Write the painted seeds into the seeds dataset; returns ``container/dataset``."""
        painted = np.asarray(self.seeds_layer.data, np.uint8)
        _write_seeds(self.container, self.seeds, self.roi, self.voxel_size, painted)
        counts = [int(np.count_nonzero(painted == v)) for v in (ORGANELLE, BACKGROUND)]
        message = (
            f"saved {counts[0]} organelle and {counts[1]} background seed voxels to "
            f"{self.container}/{self.seeds}"
        )
        logger.info(message)
        self.viewer.status = message
        return f"{self.container}/{self.seeds}"

    def segment(self) -> AnnotationResult:
        """Save the seeds, cut the ROI and show the result as the ``result`` layer."""
        self.save_seeds()
        replace = self.overwrite or bool(self.results)
        start = self.roi.offset / self.voxel_size
        result = annotate_graphcut(
            self.container,
            self.raw,
            np.asarray(self.seeds_layer.data, np.uint8),
            self.output,
            roi_offset=start,
            roi_shape=self.roi.shape / self.voxel_size,
            settings=self.settings,
            num_workers=0,
            overwrite=replace,
            progress=False,
        )
        self.results.append(result)
        self._show_result(self.output)
        self.viewer.status = (
            f"wrote {result.labels}: {100 * result.organelle_fraction:.2f} % organelle"
        )
        return result

    def _show_result(self, dataset: str) -> None:
        data = _read_roi(self.container, dataset, self.roi)
        if "result" in self.viewer.layers:
            self.viewer.layers["result"].data = data
            return
        layer = self.viewer.add_labels(
            data, name="result", scale=self.voxel_size, translate=self.roi.offset, opacity=0.4
        )
        layer.contour = 1
        if self.seeds_layer is not None:  # keep painting on the seeds
            self.viewer.layers.selection.active = self.seeds_layer


def _read_roi(container: Path, dataset: str, roi: Roi) -> np.ndarray:
    """A dataset's values over ``roi`` (zeros where it does not reach), uint8 (z, y, x)."""
    return read_padded(open_array(container, dataset), roi).astype(np.uint8)


def _write_seeds(
    container: Path, dataset: str, roi: Roi, voxel_size: Coordinate, painted: np.ndarray
) -> None:
    """Replace the ROI's part of the seeds dataset (created over the ROI if missing) by
    ``painted``, through a staged copy."""
    if not set(np.unique(painted)) <= {0, ORGANELLE, BACKGROUND}:
        raise IncasemError(
            f"{container}/{dataset}: seeds must be 0, {ORGANELLE} (organelle) or {BACKGROUND} "
            "(background); paint with those labels only"
        )
    extent = roi
    existing = dataset in list_datasets(container)
    if existing:
        old = open_array(container, dataset)
        if old.voxel_size != voxel_size or not old.roi.contains(roi):
            extent_text = format_roi_voxels(
                old.roi.offset / old.voxel_size, old.roi.shape / old.voxel_size
            )
            raise IncasemError(
                f"{container}/{dataset}: the seeds dataset ({list(old.voxel_size)} nm, "
                f"{extent_text} voxels) does not cover the ROI at the raw's voxel size; choose "
                "another --seeds"
            )
        extent = old.roi
    with staged_dataset(
        container,
        dataset,
        extent.shape / voxel_size,
        voxel_size,
        extent.offset,
        np.uint8,
        overwrite=True,
    ) as staged:
        if existing:
            staged.array[extent] = np.asarray(open_array(container, dataset)[extent])
        staged.array[roi] = painted


def open_painter(
    container: str | os.PathLike,
    raw: str,
    seeds: str,
    roi_offset: Any = None,
    roi_shape: Any = None,
    output: str | None = None,
    result: str | None = None,
    settings: CutSettings | None = None,
    overwrite: bool = False,
    show: bool = True,
) -> Painter:
    """Open a napari viewer on an ROI for painting seeds, with Save and Segment buttons.

    Args:
        container: the ``.zarr`` container (raw inside; seeds and outputs are written into it).
        raw: raw dataset (z, y, x).
        seeds: seeds dataset: resumed from if it exists, saved to otherwise.
        roi_offset: ROI start, voxels (z, y, x); with ``roi_shape``; default the whole raw.
        roi_shape: ROI size, voxels (z, y, x).
        output: label dataset the cut writes; default ``volumes/labels/<seeds' last name>``.
        result: an earlier label dataset to overlay (default ``output`` if it exists).
        settings: the cut's parameters (lambda in the widget changes ``pairwise_weight``).
        overwrite: let the first cut replace an existing ``output``.
        show: show the window (False for scripts and tests).

    Raises:
        IncasemError: napari missing, a bad ROI or dataset, seeds that do not cover the ROI.
    """
    napari = import_napari()
    container = Path(container)
    raw_array = open_array(container, raw)
    voxel_size = raw_array.voxel_size
    roi = resolve_roi(raw_array, f"{container}/{raw}", roi_offset, roi_shape)
    # the seeds layer holds the whole ROI in memory (uint8)
    check_memory(f"{container}/{raw} ROI {roi}", roi.shape / voxel_size, np.uint8)
    name = seeds.strip("/").rsplit("/", 1)[-1]
    output = (output or f"volumes/labels/{name}").strip("/")
    datasets = list_datasets(container)
    painted = _read_roi(container, seeds, roi) if seeds in datasets else None
    viewer = napari.Viewer(title=f"incasem paint: {container}/{raw}", show=show)
    painter = Painter(
        container,
        raw,
        seeds,
        output,
        roi,
        voxel_size,
        settings or CutSettings(),
        overwrite,
        viewer,
    )
    viewer.add_image(_lazy_roi(raw_array, roi), name="raw", scale=voxel_size, translate=roi.offset)
    overlay = result or (output if output in datasets else None)
    if overlay:
        painter._show_result(overlay)
    if painted is None:
        painted = np.zeros(tuple(roi.shape / voxel_size), np.uint8)
    painter.seeds_layer = _paint_layer(viewer, painted, "seeds", roi, voxel_size, BACKGROUND)
    painter.controls = _controls(painter)
    viewer.window.add_dock_widget(painter.controls, name="incasem", area="right")
    return painter


def _lazy_roi(raw_array: Any, roi: Roi) -> Any:
    """The ROI of the raw as a lazy (dask) array: napari reads the planes it shows."""
    voxel_size = raw_array.voxel_size
    begin = (roi.offset - raw_array.roi.offset) / voxel_size
    box = tuple(slice(b, b + n) for b, n in zip(begin, roi.shape / voxel_size, strict=True))
    return raw_array.data[box]


def _controls(painter: Painter) -> Any:
    """The dock widget: brush class, Save and Segment (with lambda)."""
    from magicgui import widgets

    kind = widgets.RadioButtons(
        choices=[("organelle (1)", ORGANELLE), ("background (2)", BACKGROUND), ("eraser", 0)],
        value=ORGANELLE,
        label="paint",
    )
    kind.changed.connect(lambda value: setattr(painter.seeds_layer, "selected_label", value))
    pairwise_weight = widgets.FloatSpinBox(
        value=painter.settings.pairwise_weight, min=0.0, max=1000.0, step=0.5, label="lambda"
    )
    save = widgets.PushButton(text="Save seeds")
    save.changed.connect(lambda: _report(painter, painter.save_seeds))
    segment = widgets.PushButton(text="Segment")

    def run_segment() -> None:
        painter.settings = _with_pairwise_weight(painter.settings, pairwise_weight.value)
        _report(painter, painter.segment)

    segment.changed.connect(run_segment)
    return widgets.Container(widgets=[kind, pairwise_weight, save, segment])


def _with_pairwise_weight(settings: CutSettings, value: float) -> CutSettings:
    return settings.model_copy(update={"pairwise_weight": float(value)})


def _report(painter: Painter | Corrector, action: Any) -> None:
    """Run a button's action; a bad-input error becomes the status line, not a traceback."""
    try:
        action()
    except IncasemError as e:
        painter.viewer.status = str(e)
        logger.error("%s", e)


@dataclass
class Corrector:
    """A proofreading session: a prediction's block as labels to correct, saved for training.

    Attributes:
        container: the ``.zarr`` container (raw inside; corrections are written into it).
        raw: raw dataset (z, y, x).
        output: label dataset the corrections are saved to (uint8 0/1 over the block).
        mask: mask dataset saved with it (1 in the block, 0 elsewhere in the raw's extent).
        roi: the block, world nm.
        entries: data-config JSON the block's entry is added to (replacing one of the same
            name), or None.
        overwrite: let the first save replace existing ``output``/``mask`` datasets.
        viewer: the napari viewer.
        labels_layer: the Labels layer being corrected (1 organelle, 0 background).
    """

    container: Path
    raw: str
    output: str
    mask: str
    roi: Roi
    entries: Path | None
    overwrite: bool
    viewer: Any
    labels_layer: Any = None
    controls: Any = None
    saved: int = 0

    def save(self) -> dict[str, dict[str, Any]]:
        """Write the corrected labels and the mask, add the entry to ``entries``; the entry."""
        from incasem.atomic import write_json
        from incasem.io.data_config import load_data_config

        labels = (np.asarray(self.labels_layer.data) != 0).astype(np.uint8)
        raw_array = open_array(self.container, self.raw)
        voxel_size = raw_array.voxel_size
        replace = self.overwrite or self.saved > 0
        carried = carried_voxel_size_attrs(self.container, self.raw)
        with (
            staged_dataset(
                self.container, self.output, self.roi.shape / voxel_size, voxel_size,
                self.roi.offset, np.uint8, overwrite=replace, attrs=carried,
            ) as out,
            staged_dataset(
                self.container, self.mask, raw_array.roi.shape / voxel_size, voxel_size,
                raw_array.roi.offset, np.uint8, overwrite=replace, attrs=carried,
            ) as mask,
        ):  # fmt: skip
            out.array[self.roi] = labels
            fill_roi(mask.array, self.roi)
        self.saved += 1
        entry = annotation_entry(
            self.container.resolve(), raw_array, self.roi, self.raw, self.output, self.mask
        )
        if self.entries is not None:
            known = json.loads(self.entries.read_text()) if self.entries.is_file() else {}
            write_json(self.entries, {**known, **entry})
            load_data_config(self.entries)  # the file stays a valid data config
        self.viewer.status = (
            f"saved {self.container}/{self.output} ({100 * labels.mean():.2f} % organelle)"
            + (f" and its entry in {self.entries}" if self.entries else "")
        )
        return entry


def open_corrector(
    container: str | os.PathLike,
    raw: str,
    probabilities: str,
    roi_offset: Any,
    roi_shape: Any,
    output: str,
    entries: str | os.PathLike | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
    show: bool = True,
) -> Corrector:
    """Open napari on one block of a prediction to correct it (``incasem proofread --open``).

    Args:
        container: the ``.zarr`` container holding ``raw`` and ``probabilities``.
        raw: raw dataset (z, y, x).
        probabilities: the prediction's foreground probabilities (uint8 levels or floats).
        roi_offset: block start, voxels (z, y, x).
        roi_shape: block size, voxels (z, y, x).
        output: label dataset the corrections are saved to; the mask goes to
            ``volumes/masks/<output's last name>``.
        entries: data-config JSON to add the block's entry to (for fine-tuning).
        threshold: the prediction's decision threshold; default the one it recorded, else 0.5.
        overwrite: let the first save replace existing datasets.
        show: show the window.
    """
    from incasem.postprocess.sources import (
        DatasetRef,
        above_threshold,
        default_threshold,
        read_filled,
    )

    napari = import_napari()
    container = Path(container)
    raw_array = open_array(container, raw)
    voxel_size = raw_array.voxel_size
    roi = resolve_roi(raw_array, f"{container}/{raw}", roi_offset, roi_shape)
    output = output.strip("/")
    ref = DatasetRef(str(container), probabilities.strip("/"))
    if threshold is None:
        threshold, _ = default_threshold(ref, required=True)
    starting = above_threshold(read_filled(ref, roi), threshold).astype(np.uint8)
    viewer = napari.Viewer(title=f"incasem proofread: {container}/{probabilities}", show=show)
    corrector = Corrector(
        container, raw, output, f"volumes/masks/{output.rsplit('/', 1)[-1]}", roi,
        Path(entries) if entries else None, overwrite, viewer,
    )  # fmt: skip
    viewer.add_image(_lazy_roi(raw_array, roi), name="raw", scale=voxel_size, translate=roi.offset)
    corrector.labels_layer = _paint_layer(viewer, starting, "labels", roi, voxel_size)
    corrector.controls = _correction_controls(corrector)
    viewer.window.add_dock_widget(corrector.controls, name="incasem", area="right")
    return corrector


def _paint_layer(
    viewer: Any,
    data: np.ndarray,
    name: str,
    roi: Roi,
    voxel_size: Coordinate,
    background: int | None = None,
) -> Any:
    """A Labels layer over ``roi`` ready to paint organelle (1; and ``background``, if given,
    in its own colour) with a 5-voxel brush; the active layer."""
    classes = [ORGANELLE] if background is None else [ORGANELLE, background]
    layer = viewer.add_labels(
        data,
        name=name,
        scale=voxel_size,
        translate=roi.offset,
        opacity=0.8 if background is not None else 0.5,
        colormap=_colormap(classes),
    )
    layer.brush_size = 5
    layer.selected_label = ORGANELLE
    layer.mode = "paint"
    viewer.layers.selection.active = layer
    return layer


def _colormap(classes: Sequence[int]) -> Any:
    """napari colours for label values ``classes`` (`SEED_COLOURS`), all others transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={None: SEED_COLOURS[None], **{c: SEED_COLOURS[c] for c in classes}}
    )


def _correction_controls(corrector: Corrector) -> Any:
    """The dock widget: paint organelle or erase, Save corrections."""
    from magicgui import widgets

    kind = widgets.RadioButtons(
        choices=[("organelle (1)", ORGANELLE), ("eraser", 0)], value=ORGANELLE, label="paint"
    )
    kind.changed.connect(lambda value: setattr(corrector.labels_layer, "selected_label", value))
    save = widgets.PushButton(text="Save corrections")
    save.changed.connect(lambda: _report(corrector, corrector.save))
    return widgets.Container(widgets=[kind, save])
