"""Post-processing of a binary segmentation and its choice on validation data."""

from __future__ import annotations

import numpy as np

from incasem.postprocess.cleanup import PostProcessing, choose_post_processing

VOXEL_SIZE = (8, 4, 4)
VOXEL_NM3 = 8 * 4 * 4


def _cube_with_hole() -> np.ndarray:
    truth = np.zeros((20, 20, 20), bool)
    truth[4:14, 4:14, 4:14] = True
    return truth


def test_fill_holes_and_remove_small_objects():
    foreground = _cube_with_hole()
    foreground[8:10, 8:10, 8:10] = False  # a hole
    foreground[17:19, 17:19, 17:19] = True  # an 8-voxel speck
    cleaned = PostProcessing(True, 9 * VOXEL_NM3).apply(foreground, VOXEL_SIZE)
    np.testing.assert_array_equal(cleaned, _cube_with_hole())
    assert PostProcessing(False, 8 * VOXEL_NM3).apply(foreground, VOXEL_SIZE)[17, 17, 17]
    np.testing.assert_array_equal(PostProcessing().apply(foreground, VOXEL_SIZE), foreground)
    assert (
        PostProcessing(True, 9 * VOXEL_NM3).describe() == "fill holes, remove objects < 1,152 nm³"
    )
    assert PostProcessing().describe() == "none" and not PostProcessing().active


def test_validation_chooses_post_processing_that_beats_none():
    truth = _cube_with_hole()
    probability = np.where(truth, 0.9, 0.1)
    probability[6:12, 6:12, 6:12] = 0.2  # missed inside: a hole
    for speck in ((1, 1, 1), (1, 18, 18), (18, 1, 9), (17, 17, 2)):
        probability[speck] = 0.95  # single-voxel false positives
    region = np.ones_like(truth)
    chosen, f1 = choose_post_processing([(probability >= 0.5, truth, region)], VOXEL_SIZE)
    assert chosen.fill_holes and chosen.min_object_nm3 > 0
    assert f1 == 1.0
    # a clean prediction needs nothing: none wins the tie
    clean, _ = choose_post_processing([(truth, truth, region)], VOXEL_SIZE)
    assert clean == PostProcessing()
