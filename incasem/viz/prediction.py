"""The picture of one predicted entry: a few sections and the threshold sweep.

Everything is read from the prediction's own output group, whose attributes record the entry
(container, raw, labels) and the provenance hash that names the folder of per-block metric
counts (see `incasem.predict.output` and `incasem.predict.block_metrics`), so the report can be
drawn right after predicting or any time later, with no run database.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr
from funlib.geometry import Roi

from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.arrays import check_complete
from incasem.predict.block_metrics import load_metrics, metrics_path
from incasem.viz.curves import plt, prediction_report_figure, save_figure


def _section_roi(roi: Roi, voxel_size, z: int) -> Roi:
    offset = list(roi.offset)
    shape = list(roi.shape)
    offset[0] += z * voxel_size[0]
    shape[0] = voxel_size[0]
    return Roi(offset, shape)


def write_prediction_report(
    container: str | os.PathLike,
    group: str,
    out: str | os.PathLike,
    num_sections: int = 3,
) -> Path:
    """Write `prediction_report` of one predicted entry as a PNG to ``out`` (replaced if it
    exists)."""
    return save_figure(prediction_report(container, group, num_sections), out)


def prediction_report(
    container: str | os.PathLike, group: str, num_sections: int = 3
) -> plt.Figure:
    """The report figure of one predicted entry.

    Args:
        container: the output container of the prediction.
        group: the entry's group, ``volumes/predictions/<model>/predict_<id>/<entry>``.
        num_sections: z sections to show, spread evenly over the entry's ROI.

    Rows are z sections, named by their world position (voxel index as in data-config ROIs, and
    nm); panels: raw | p(class) of every foreground class | segmentation | labels (class ids, as
    scored); the threshold sweep shows every foreground class. Raises `IncasemError` naming
    the group if it is not a prediction entry or not finished
    (`incasem.io.arrays.check_complete`).
    """
    container = Path(container)
    try:
        attrs = dict(zarr.open_group(str(container), mode="r", path=group).attrs)
    except (KeyError, ValueError, zarr.errors.GroupNotFoundError):
        raise IncasemError(f"{container}/{group}: no such prediction group") from None
    provenance = attrs.get("provenance", {})
    record = provenance.get("entry")
    if not record or "provenance_hash" not in attrs:
        raise IncasemError(f"{container}/{group}: not a prediction entry (no provenance)")
    check_complete(container, f"{group}/segmentation")
    segmentation = open_array(container, f"{group}/segmentation")
    class_names = segmentation.attrs.get("class_names") or []
    num_classes = max(len(class_names), 2)
    names = [class_names[c] if c < len(class_names) else f"class {c}" for c in range(num_classes)]
    probabilities = {
        names[c]: open_array(container, f"{group}/prob_maps/class_{c}")
        for c in range(1, num_classes)
    }
    source = Path(record["container"])
    raw = open_array(source, record["raw"])
    labels = [(open_array(source, ds), int(c)) for ds, c in record.get("labels", {}).items()]
    roi, voxel_size = segmentation.roi, segmentation.voxel_size
    depth = roi.shape[0] // voxel_size[0]
    count = max(1, min(num_sections, depth))
    indices = sorted({int(round(i)) for i in np.linspace(0, depth - 1, count + 2)[1:-1]})
    sections, rows = [], []
    for z in indices:
        section_roi = _section_roi(roi, voxel_size, z)
        panels = {"raw": raw[section_roi][0]}
        for name, probability in probabilities.items():
            scale = 255.0 if probability.dtype == np.uint8 else 1.0
            panels[f"p({name})"] = probability[section_roi][0] / scale
        panels["segmentation"] = segmentation[section_roi][0]
        if labels:
            truth = np.zeros(panels["segmentation"].shape, np.uint8)
            for array, label_class in labels:
                truth[array[section_roi][0] > 0] = label_class
            panels["labels"] = truth
        sections.append(panels)
        world = section_roi.offset[0]
        rows.append(f"z {world // voxel_size[0]} = {world} nm")
    metrics_dir = metrics_path(container / group / ".daisy", attrs["provenance_hash"])
    _, histograms, blocks = load_metrics(metrics_dir, num_classes)
    sweeps = {names[c]: histograms.sweep(c) for c in range(1, num_classes)} if blocks else {}
    title = f"{container.name}/{group}: {', '.join(names[1:])}"
    return prediction_report_figure(sections, rows, sweeps, title)
