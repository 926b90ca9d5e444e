"""The picture of one predicted entry: a few sections and the threshold sweep.

Everything is read from the prediction's own output group, whose attributes record the entry
(container, raw, labels) and the provenance hash that names the folder of per-block metric
counts (see `incasem.predict.output` and `incasem.predict.resume`), so the report can be drawn
right after predicting or any time later, with no run database.
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
from incasem.predict.resume import load_metrics, metrics_path
from incasem.viz.curves import plot_prediction_report


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
    class_id: int = 1,
) -> Path:
    """Write the PNG report of one predicted entry.

    Args:
        container: the output container of the prediction.
        group: the entry's group, ``volumes/predictions/<model>/predict_<id>/<entry>``.
        out: PNG path (replaced if it exists).
        num_sections: z sections to show, spread evenly over the entry's ROI.
        class_id: the class whose probability and threshold sweep are shown.

    Rows are z sections (index in voxels from the ROI start); panels: raw | p(class) |
    segmentation | labels (class ids, as scored). Raises `IncasemError` naming the group if it
    is not a prediction entry or not finished (`incasem.io.arrays.check_complete`).
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
    probability = open_array(container, f"{group}/prob_maps/class_{class_id}")
    source = Path(record["container"])
    raw = open_array(source, record["raw"])
    labels = [(open_array(source, ds), int(c)) for ds, c in record.get("labels", {}).items()]
    roi, voxel_size = segmentation.roi, segmentation.voxel_size
    depth = roi.shape[0] // voxel_size[0]
    count = max(1, min(num_sections, depth))
    indices = sorted({int(round(i)) for i in np.linspace(0, depth - 1, count + 2)[1:-1]})
    scale = 255.0 if probability.dtype == np.uint8 else 1.0
    sections, names = [], []
    for z in indices:
        section_roi = _section_roi(roi, voxel_size, z)
        panels = {
            "raw": raw[section_roi][0],
            "probability": probability[section_roi][0] / scale,
            "segmentation": segmentation[section_roi][0],
        }
        if labels:
            truth = np.zeros(panels["segmentation"].shape, np.uint8)
            for array, label_class in labels:
                truth[array[section_roi][0] > 0] = label_class
            panels["labels"] = truth
        sections.append(panels)
        names.append(f"z = {z}")
    num_classes = max(len(class_names), class_id + 1)
    metrics_dir = metrics_path(container / group / ".daisy", attrs["provenance_hash"])
    _, histograms, blocks = load_metrics(metrics_dir, num_classes)
    sweep = histograms.sweep(class_id) if blocks else []
    name = class_names[class_id] if class_id < len(class_names) else f"class {class_id}"
    title = f"{container.name}/{group}: {name}"
    return plot_prediction_report(sections, names, sweep, out, title)
