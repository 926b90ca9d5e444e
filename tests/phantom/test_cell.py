"""The synthetic FIB-SEM cell: determinism, content, physical scale and agreement of labels with
the image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from incasem.phantom import ORGANELLES, PhantomCell, generate_cell


@pytest.fixture(scope="module")
def cell() -> PhantomCell:
    """A 640 nm cube: large enough to hold every organelle class."""
    return generate_cell((128, 128, 128), seed=0)


def _background_level(cell: PhantomCell) -> float:
    """Median raw value of unlabelled voxels (mostly cytoplasm; resin is a minority)."""
    unlabelled = np.ones(cell.raw.shape, bool)
    for mask in cell.labels.values():
        unlabelled &= mask == 0
    return float(np.median(cell.raw[unlabelled]))


def test_same_seed_is_byte_identical_and_seeds_differ() -> None:
    a = generate_cell((48, 48, 48), seed=3)
    b = generate_cell((48, 48, 48), seed=3)
    c = generate_cell((48, 48, 48), seed=4)
    assert a.raw.tobytes() == b.raw.tobytes()
    for name in ORGANELLES:
        assert a.labels[name].tobytes() == b.labels[name].tobytes()
    assert a.raw.tobytes() != c.raw.tobytes()
    assert any(a.labels[n].tobytes() != c.labels[n].tobytes() for n in ORGANELLES)


def test_types_shapes_and_voxel_size(cell: PhantomCell) -> None:
    assert cell.raw.dtype == np.uint8
    assert cell.raw.shape == (128, 128, 128)
    assert cell.voxel_size == (5, 5, 5)
    assert tuple(cell.labels) == ORGANELLES
    for mask in cell.labels.values():
        assert mask.dtype == np.uint8
        assert mask.shape == cell.raw.shape
        assert set(np.unique(mask)) <= {0, 1}


def test_every_organelle_present_in_a_640nm_cube(cell: PhantomCell) -> None:
    for name in ORGANELLES:
        assert cell.labels[name].any(), name


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_crop_has_mitochondria_and_er(seed: int) -> None:
    small = generate_cell((64, 64, 64), seed=seed)
    assert small.labels["mito"].any()
    assert small.labels["er"].any()


def test_raw_uses_a_realistic_range(cell: PhantomCell) -> None:
    raw = cell.raw
    saturated = np.mean((raw == 0) | (raw == 255))
    assert saturated < 0.03
    low, high = np.percentile(raw, [5, 95])
    assert high - low > 80
    assert 100 < raw.mean() < 200


def test_organelles_are_darker_than_cytoplasm(cell: PhantomCell) -> None:
    background = _background_level(cell)
    raw = cell.raw.astype(float)
    labels = {name: mask.astype(bool) for name, mask in cell.labels.items()}
    mito_core = ndi.binary_erosion(labels["mito"], iterations=8)
    assert raw[mito_core].mean() < background - 40  # darker matrix, not just the membranes
    assert raw[labels["mito"]].mean() < background - 50
    assert raw[labels["golgi"]].mean() < background - 45
    assert raw[labels["er"]].mean() < background - 30
    assert raw[labels["plasma_membrane"]].mean() < background - 45
    assert raw[labels["nuclear_pores"]].mean() < background - 40
    envelope = labels["nucleus"] & ~ndi.binary_erosion(labels["nucleus"], iterations=2)
    assert raw[envelope].mean() < background - 30


@pytest.mark.parametrize("name", ["mito", "vesicles", "golgi"])
def test_membranes_lie_on_the_inside_of_the_label_edge(cell: PhantomCell, name: str) -> None:
    """The dark membrane is inside the label (rim) and the cytoplasm just outside is light."""
    mask = cell.labels[name].astype(bool)
    rim = mask & ~ndi.binary_erosion(mask, iterations=2)
    ring = ndi.binary_dilation(mask, iterations=4) & ~ndi.binary_dilation(mask, iterations=2)
    raw = cell.raw.astype(float)
    assert raw[rim].mean() < raw[ring].mean() - 50


def test_anisotropic_voxels_sample_the_same_physical_shapes() -> None:
    voxel_size = (20, 5, 5)
    aniso = generate_cell((32, 128, 128), seed=1, voxel_size=voxel_size)
    assert aniso.raw.shape == (32, 128, 128)
    assert aniso.voxel_size == voxel_size
    assert aniso.labels["mito"].any() and aniso.labels["vesicles"].any()
    # Vesicles are spheres: their extent in nm is about the same along z as along y and x.
    components, _ = ndi.label(aniso.labels["vesicles"])
    extents = []
    for box in ndi.find_objects(components):
        if any(s.start == 0 or s.stop == n for s, n in zip(box, aniso.raw.shape, strict=True)):
            continue
        extents.append([(s.stop - s.start) * v for s, v in zip(box, voxel_size, strict=True)])
    extents_nm = np.asarray(extents, dtype=float)
    assert len(extents_nm) >= 5
    ratio = extents_nm[:, 0].mean() / extents_nm[:, 1:].mean()
    assert 0.7 < ratio < 1.5
    assert 40 <= np.median(extents_nm[:, 1:]) <= 110


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_cell((0, 16, 16))
    with pytest.raises(ValueError):
        generate_cell((16, 16, 16), voxel_size=(5, 0, 5))
    with pytest.raises(ValueError):
        generate_cell((16, 16, 16), voxel_size=(40, 5.9, 5.9))
