"""The napari painter, headless (a real viewer on an X virtual framebuffer): paint, save,
reopen, segment, look at it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason='the painter needs the gui extra: pip install -e ".[gui]"')
if not os.environ.get("DISPLAY"):
    pytest.skip(
        "no display for napari: run under xvfb-run (make test does)", allow_module_level=True
    )

from skimage.io import imsave  # noqa: E402

from incasem.annotate import simulate_strokes  # noqa: E402
from incasem.annotate.paint import open_painter  # noqa: E402
from incasem.errors import IncasemError  # noqa: E402
from incasem.io import create_array, open_array  # noqa: E402
from incasem.metrics import ConfusionCounts  # noqa: E402
from incasem.phantom import write_cell  # noqa: E402

ROI_OFFSET, ROI_SHAPE = (8, 16, 16), (64, 64, 64)


@pytest.fixture
def cell(tmp_path: Path) -> Path:
    path = tmp_path / "cell.zarr"
    write_cell(path, shape=(80, 96, 96))
    return path


def _truth(cell: Path) -> np.ndarray:
    box = tuple(slice(o, o + s) for o, s in zip(ROI_OFFSET, ROI_SHAPE, strict=True))
    return open_array(cell, "volumes/labels/mito")[:][box]


def _f1(prediction: np.ndarray, truth: np.ndarray) -> float:
    return ConfusionCounts.from_arrays(prediction != 0, truth != 0, None, 2).class_scores(1)["f1"]


def test_paint_save_reopen_and_segment(cell: Path, tmp_path: Path):
    painter = open_painter(
        cell, "volumes/raw", "volumes/seeds/painted", ROI_OFFSET, ROI_SHAPE, show=False
    )
    seeds = painter.viewer.layers["seeds"]
    assert [layer.name for layer in painter.viewer.layers] == ["raw", "seeds"]
    assert tuple(seeds.scale) == (5, 5, 5) and tuple(seeds.translate) == (40, 80, 80)
    assert seeds.mode == "paint" and seeds.selected_label == 1 and not seeds.data.any()
    # Strokes as an annotator would leave them, plus two dabs of the brush itself.
    seeds.data = simulate_strokes(_truth(cell), planes_per_axis=3)
    seeds.brush_size = 3
    seeds.paint((2, 2, 2), 2)
    assert seeds.data[2, 2, 2] == 2 and seeds.data[2, 3, 2] == 2
    painted = np.array(seeds.data)
    painter.controls[2].native.click()  # "Save seeds"
    saved = open_array(cell, "volumes/seeds/painted")
    assert list(saved.roi.offset) == [40, 80, 80] and saved.shape == ROI_SHAPE
    np.testing.assert_array_equal(saved[saved.roi], painted)
    assert "saved" in painter.viewer.status
    painter.viewer.close()

    # Shown (on the virtual display): napari renders a hidden window's canvas black.
    reopened = open_painter(
        cell, "volumes/raw", "volumes/seeds/painted", ROI_OFFSET, ROI_SHAPE, show=True
    )
    np.testing.assert_array_equal(reopened.viewer.layers["seeds"].data, painted)
    reopened.controls[3].native.click()  # "Segment"
    result = reopened.viewer.layers["result"].data
    assert _f1(result, _truth(cell)) >= 0.85
    labels = open_array(cell, "volumes/labels/painted")  # the default output
    np.testing.assert_array_equal(labels[labels.roi], result)
    assert "% organelle" in reopened.viewer.status
    # Look at it: the seeds' green and magenta and the result's contour are on the canvas.
    reopened.viewer.dims.set_point(0, 40 + 5 * 32)
    image = reopened.viewer.screenshot(canvas_only=True)
    imsave(tmp_path / "painter.png", image)
    rgb = image[..., :3].astype(int)
    green = (rgb[..., 1] > 200) & (rgb[..., 0] < 120) & (rgb[..., 2] < 120)
    magenta = (rgb[..., 0] > 200) & (rgb[..., 2] > 200) & (rgb[..., 1] < 120)
    assert green.sum() > 20 and magenta.sum() > 20
    reopened.viewer.close()


def test_segment_does_not_replace_an_earlier_result_without_overwrite(cell: Path):
    existing = create_array(cell, "volumes/labels/mito_gc", ROI_SHAPE, (5, 5, 5), (40, 80, 80))
    existing[existing.roi] = np.ones(ROI_SHAPE, np.uint8)
    painter = open_painter(
        cell, "volumes/raw", "volumes/seeds/s", ROI_OFFSET, ROI_SHAPE,
        output="volumes/labels/mito_gc", show=False,
    )  # fmt: skip
    assert painter.viewer.layers["result"].data.all()  # the earlier result is shown
    painter.viewer.layers["seeds"].data = simulate_strokes(_truth(cell), planes_per_axis=3)
    painter.controls[3].native.click()
    assert "already exists; pass --overwrite" in painter.viewer.status
    assert open_array(cell, "volumes/labels/mito_gc")[:].all()
    painter.viewer.close()


def test_bad_roi_and_seeds_are_one_line_errors(cell: Path):
    with pytest.raises(IncasemError, match=r"ROI \[70:134, 0:8, 0:8\] \(voxels\) is not inside"):
        open_painter(cell, "volumes/raw", "volumes/seeds/s", (70, 0, 0), (64, 8, 8), show=False)
    small = create_array(cell, "volumes/seeds/small", (4, 4, 4), (5, 5, 5))
    small[small.roi] = np.zeros((4, 4, 4), np.uint8)
    painter = open_painter(
        cell, "volumes/raw", "volumes/seeds/small", ROI_OFFSET, ROI_SHAPE, show=False
    )
    with pytest.raises(IncasemError, match="does not cover the ROI"):
        painter.save_seeds()
    painter.viewer.close()


def test_correct_a_predicted_block_and_save_it_for_training(cell: Path, tmp_path: Path):
    from incasem.annotate.paint import open_corrector
    from incasem.io.data_config import check_data_config

    truth = _truth(cell)
    p = np.where(truth > 0, 230, 10).astype(np.uint8)
    p[:, :, :8] = 200  # a false positive slab the annotator erases
    prediction = create_array(cell, "pred/class_1", ROI_SHAPE, (5, 5, 5), (40, 80, 80))
    prediction[prediction.roi] = p
    entries = tmp_path / "corrections.json"
    corrector = open_corrector(
        cell, "volumes/raw", "pred/class_1", ROI_OFFSET, ROI_SHAPE, "volumes/labels/fixed",
        entries=entries, show=False,
    )  # fmt: skip
    labels = corrector.labels_layer
    assert labels.data.sum() == ((truth > 0) | (np.arange(64) < 8)[None, None, :]).sum()
    labels.data = np.where(np.arange(64)[None, None, :] < 8, 0, labels.data)  # erase
    corrector.controls[1].native.click()  # "Save corrections"
    saved = open_array(cell, "volumes/labels/fixed")
    np.testing.assert_array_equal(
        saved[saved.roi], (truth > 0).astype(np.uint8) * (np.arange(64)[None, None, :] >= 8)
    )
    mask = open_array(cell, "volumes/masks/fixed")
    assert mask[mask.roi].sum() == np.prod(ROI_SHAPE)
    config = check_data_config(entries, num_classes=2)
    (entry,) = config.entries
    assert entry.name == "fixed" and entry.offset == list(ROI_OFFSET)
    assert "saved" in corrector.viewer.status
    corrector.viewer.close()
