"""``incasem metric-mask --organelle membrane``: a preset for thin membrane labels."""

from __future__ import annotations

import numpy as np

from incasem.cli.main import main
from incasem.io import create_array, open_array


def test_membrane_preset_keeps_the_membrane_and_one_voxel_around_it_out(tmp_path, capsys):
    container = tmp_path / "sections.zarr"
    labels = np.zeros((6, 16, 24), np.uint8)
    labels[:, :, 10:12] = 1  # a membrane sheet two 5 nm voxels thick, through every section
    array = create_array(container, "volumes/labels/membrane", labels.shape, (50, 5, 5))
    array[array.roi] = labels
    argv = ["metric-mask", str(container), "-d", "volumes/labels/membrane", "--organelle",
            "membrane", "--workers", "0"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"wrote {container}/volumes/metric_masks/membrane" in out
    assert "(excluding 0 nm inwards, 5 nm outwards)" in out
    mask = open_array(container, "volumes/metric_masks/membrane")
    mask = mask[mask.roi]
    assert np.all(mask[:, :, 10:12] == 255)  # the membrane itself is scored
    assert np.all(mask[:, :, [9, 12]] == 0)  # its 5 nm rim is not
    assert np.all(mask[:, :, :9] == 255) and np.all(mask[:, :, 13:] == 255)
