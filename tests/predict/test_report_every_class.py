"""The prediction report of a three-class model (its card names the classes mito and er; here
labelled by a membrane dataset = 1 and a mito dataset = 2): a probability panel and a
threshold sweep for every foreground class (6a96a73 drew class 1 alone), rows named by their
world z (voxel index as in data-config ROIs, and nm; 6a96a73 printed the index in the ROI)."""

from __future__ import annotations

import numpy as np

from incasem.io import create_array
from incasem.predict import predict
from incasem.viz.prediction import prediction_report

from .conftest import OFFSET, SHAPE, VOXEL_SIZE, write_cell, write_checkpoint, write_config


def test_report_shows_every_class_at_world_z(tmp_path):
    cell = write_cell(tmp_path / "cell.zarr")
    membrane = np.zeros(SHAPE, np.uint8)
    membrane[:, 5:7, :] = 1
    array = create_array(cell, "volumes/labels/membrane", SHAPE, VOXEL_SIZE, OFFSET,
                         chunks=(32, 32, 32))  # fmt: skip
    array[array.roi] = membrane
    checkpoint = write_checkpoint(tmp_path / "model.pt", "unet2", num_classes=3)
    # ROI offset 10 voxels in z: world z starts at 80 nm + 10 x 8 nm = 160 nm = voxel 20
    labels = {"volumes/labels/membrane": 1, "volumes/labels/mito": 2}
    config = write_config(tmp_path / "c.json", {"roi": {"offset": [20, 10, 0],
                          "shape": [16, 40, 48], "labels": labels}})  # fmt: skip
    result = predict(checkpoint=str(checkpoint), data=str(config), data_root=str(tmp_path),
                     input_size_voxels=[84] * 3, device="cpu", progress=False,
                     log_metrics=True)  # fmt: skip
    (entry,) = result.entries
    figure = prediction_report(entry.container, entry.group, num_sections=1)
    titles = [axis.get_title() for axis in figure.axes]
    # one section in the middle of z 20..35: the ROI's 8th, world voxel 28 = 224 nm
    assert titles[:5] == [
        f"{name} (z 28 = 224 nm)" for name in ("raw", "p(mito)", "p(er)", "segmentation", "labels")
    ]
    sweep = figure.axes[-1]
    labels = [line.get_label() for line in sweep.get_lines()]
    assert [label for label in labels if not label.startswith("_")] == [
        "mito f1", "mito iou", "er f1", "er iou",
    ]  # fmt: skip
    assert "best F1: mito " in sweep.get_title() and "; er " in sweep.get_title()
