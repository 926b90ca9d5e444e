"""Labels of dtype int64 with -1 for "not annotated", as other tools write them.

``incasem validate`` accepts them and training's pipeline reads them (it requested uint8 from
the int64 dataset and failed in gunpowder): voxels > 0 are the class, ``ignore_value: -1``
voxels count in no loss, other values (0, and -1 without an ignore value) are background. An
ignore value the dtype cannot hold is refused by ``validate`` in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import gunpowder as gp
import numpy as np
import pytest

from incasem.cli.main import main
from incasem.io import create_array
from incasem.pipeline import TrainingKeys, batch_pipeline, training_request
from incasem.training.config import parse_config
from incasem.training.loop import check_training_config, seed_everything


def _data(tmp_path: Path, dtype, ignore_value) -> Path:
    shape = (64, 64, 64)
    raw = create_array(tmp_path / "cell.zarr", "volumes/raw", shape, (5, 5, 5))
    raw[raw.roi] = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    # a checkerboard of 4-voxel cells: any part of a 30-voxel output window that lies in the
    # volume, wherever it lands and however it is turned, holds both kinds of cell
    z, y, x = np.indices(shape) // 4
    labels = np.where((z + y + x) % 2 == 0, 1, -1 if np.dtype(dtype).kind == "i" else 0)
    labels = labels.astype(dtype)
    array = create_array(
        tmp_path / "cell.zarr", "volumes/labels/mito", shape, (5, 5, 5), dtype=dtype
    )
    array[array.roi] = labels
    entry = {"file": "cell.zarr", "offset": [0, 0, 0], "shape": list(shape),
             "voxel_size": [5, 5, 5], "raw": "volumes/raw",
             "labels": {"volumes/labels/mito": 1}}  # fmt: skip
    if ignore_value is not None:
        entry["ignore_value"] = ignore_value
    config = tmp_path / "data.json"
    config.write_text(json.dumps({"block": entry}))
    return config


@pytest.mark.parametrize("ignore_value", [-1, None])
def test_int64_labels_with_minus_one_train(tmp_path, capsys, ignore_value):
    data = _data(tmp_path, np.int64, ignore_value)
    assert main(["validate", str(data), "--data-root", str(tmp_path)]) == 0
    config = parse_config(
        {
            "directories": {"data": str(tmp_path), "runs": str(tmp_path / "runs")},
            "training": {"data": str(data), "input_size_voxels": [124, 124, 124],
                         "output_size_voxels": [30, 30, 30],
                         "reject": {"min_masked": 0.0, "min_valid": 0.2}},
        }
    )  # fmt: skip
    keys = TrainingKeys.create()
    pipeline = batch_pipeline(config, check_training_config(config).train, keys, tmp_path)
    seed_everything(0)
    with gp.build(pipeline):
        batch = pipeline.request_batch(training_request(config, keys))
    labels, valid = batch[keys.labels].data, batch[keys.valid].data > 0
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}
    assert (labels[valid] == 1).any()
    if ignore_value == -1:  # only the annotated cube counts: no background is learnt
        assert set(np.unique(labels[valid])) == {1}
    else:  # -1 is not > 0: background, and it counts
        assert set(np.unique(labels[valid])) == {0, 1}


def test_an_ignore_value_the_labels_cannot_hold_is_refused(tmp_path, capsys):
    data = _data(tmp_path, np.uint8, -1)
    assert main(["validate", str(data), "--data-root", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert (
        "block: labels 'volumes/labels/mito' is uint8 (0..255): ignore_value -1 cannot occur "
        "in it, so no voxel would count as not annotated" in err
    )
