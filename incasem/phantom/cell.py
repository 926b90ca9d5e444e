"""Deterministic synthetic FIB-SEM cell ("phantom"): the embedded default data for demos and tests.

Why it is built this way
------------------------
* **Physical units.** Every size, density and imaging parameter is in nanometres (or per µm³ /
  µm²) and converted to voxels only when rasterising, so an anisotropic ``voxel_size`` such as
  (20, 5, 5) nm gives the same physical cell, just sampled differently.
* **Implicit surfaces in bounding boxes.** Each organelle is a signed distance field (nm, negative
  inside) built from a few primitives (capsule chains for mitochondria and ER tubules, stacks of
  spherical-cap sheets for ER sheets and Golgi cisternae, spheres for vesicles), evaluated only in
  the bounding box of each primitive. One global field holds the union of everything placed so
  far, initialised with the distance to the nucleus and the extracellular space. Non-overlap with
  a minimum cytoplasmic gap is then a cheap test (``d_new + d_old >= gap``, by the triangle
  inequality), and the picture is composed in a few vectorised passes with per-object lookup
  tables instead of one full-volume pass per object. A 256³ volume takes seconds.
* **Box-filtered membranes.** A membrane is a band of the signed distance. Its half-thickness is
  widened to the voxel's extent along the surface normal, and its darkness is reduced by the same
  factor (partial-volume averaging). A membrane thinner than a FIB slice therefore neither
  vanishes nor breaks up. Labels are whole regions of the distance field, so a label always
  covers the dark membrane and the lumen that the image shows.
* **Framing and densities.** The field of view always sits at the cell periphery next to the
  nucleus: some resin outside the plasma membrane and a cap of nucleus opposite, with at least
  450 nm of cytoplasm between them (so crops under about half a micrometre are mostly cytoplasm
  and may miss the boundaries). Organelle counts
  follow densities per µm³ of cytoplasm, with at least one mitochondrion, ER tubule, Golgi stack
  and a few vesicles, so small crops still contain the main classes.
* **Contrast as in inverted backscatter FIB-SEM** (compare the EPFL hippocampus volume): stained
  membranes, chromatin and ribosomes are dark, cytoplasm is mid-light grey with granular texture,
  the mitochondrial matrix is darker than the cytoplasm, and unstained resin is bright and flat.
* **Imaging model.** Gaussian point spread (nm), signal-dependent shot noise (Gaussian
  approximation of Poisson) plus detector noise, FIB curtaining (stripes constant along y, quick
  along x, slowly changing along z) and slice-to-slice brightness drift.
* **Determinism.** Only ``numpy.random.default_rng(seed)`` is used, and its draws happen in a
  fixed order, so a seed reproduces byte-identical volumes.

The parts, one module each: the labels (`incasem.phantom.labels`), the physical parameters
(`~incasem.phantom.parameters`), smooth random fields (`~incasem.phantom.fields`), the scene's
distance field (`~incasem.phantom.scene`), the framing of plasma membrane and nucleus
(`~incasem.phantom.layout`), the primitive shapes (`~incasem.phantom.shapes`), the placed
organelles (`~incasem.phantom.organelles`) and nuclear pores (`~incasem.phantom.pores`), the
noise-free picture (`~incasem.phantom.render`) and the acquisition (`~incasem.phantom.acquire`).
This module assembles them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from incasem.phantom.acquire import _acquire
from incasem.phantom.fields import _smooth_noise
from incasem.phantom.labels import ORGANELLES
from incasem.phantom.layout import _boundaries
from incasem.phantom.organelles import (
    _add_er_sheets,
    _add_er_tubules,
    _add_golgi,
    _add_mitochondria,
    _add_vesicles,
)
from incasem.phantom.parameters import _ROUGHNESS_NM
from incasem.phantom.pores import _place_pores
from incasem.phantom.render import _render
from incasem.phantom.scene import _Scene


@dataclass(frozen=True)
class PhantomCell:
    """A synthetic FIB-SEM volume with ground truth.

    Attributes:
        raw: uint8 image, axes (z, y, x); membranes dark, resin bright.
        labels: organelle name (every entry of ``ORGANELLES``) -> uint8 binary (0/1) mask of the
            same shape as ``raw``. Masks are independent and may overlap: ``nuclear_pores`` lies
            on the envelope, which is part of ``nucleus``.
        voxel_size: voxel size in nm, (z, y, x).
        cell_mask: uint8 0/1, 1 inside the plasma membrane (the cell), 0 in the resin.
    """

    raw: np.ndarray
    labels: dict[str, np.ndarray]
    voxel_size: tuple[int, int, int]
    cell_mask: np.ndarray


def generate_cell(
    shape: tuple[int, int, int] = (256, 256, 256),
    seed: int = 0,
    voxel_size: tuple[int, int, int] = (5, 5, 5),
) -> PhantomCell:
    """Generate a synthetic FIB-SEM volume of a cell periphery with organelle labels.

    Args:
        shape: volume shape in voxels, (z, y, x).
        seed: seed of ``numpy.random.default_rng``; equal seeds give byte-identical output.
        voxel_size: voxel size in nm, (z, y, x). All object sizes are physical (mitochondria
            300-700 nm across, ER tubules 50-100 nm, vesicles 40-100 nm), so anisotropic voxels
            sample the same cell.

    Returns:
        The raw image (uint8) and one binary uint8 mask per name in ``ORGANELLES``.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive ints (z, y, x), got {shape}")
    if len(voxel_size) != 3 or min(voxel_size) <= 0 or any(int(v) != v for v in voxel_size):
        raise ValueError(
            f"voxel_size must be three positive integer nm (z, y, x), got {voxel_size}"
        )
    rng = np.random.default_rng(seed)
    scene = _Scene(tuple(int(s) for s in shape), np.asarray(voxel_size, dtype=np.float64))
    dp, dn = _boundaries(rng, scene)
    scene.sdf = np.minimum(-dp, dn)
    _add_organelles(rng, scene)
    _roughen(rng, scene, dp, dn)
    pores = _place_pores(rng, scene, dn)
    cell_mask = (dp <= 0).astype(np.uint8)

    image, labels = _render(rng, scene, dp, dn, pores)
    raw = _acquire(rng, image, scene.vs)
    return PhantomCell(
        raw=raw,
        labels={name: labels[name] for name in ORGANELLES},
        voxel_size=tuple(int(v) for v in voxel_size),
        cell_mask=cell_mask,
    )


def _add_organelles(rng: np.random.Generator, scene: _Scene) -> None:
    """Place every organelle by its density per µm³ of the cytoplasm the layout left."""
    cyto_um3 = float(np.count_nonzero(scene.sdf > 0)) * scene.voxel_um3
    _add_mitochondria(rng, scene, cyto_um3)
    golgi_vesicles = _add_golgi(rng, scene, cyto_um3)
    _add_er_sheets(rng, scene, cyto_um3)
    _add_er_tubules(rng, scene, cyto_um3)
    _add_vesicles(rng, scene, cyto_um3, golgi_vesicles)


def _roughen(rng: np.random.Generator, scene: _Scene, dp: np.ndarray, dn: np.ndarray) -> None:
    """Membrane roughness at the 40 nm scale on every surface, in place: the organelles', the
    plasma membrane's (``dp``) and the nucleus' (``dn``); distances in nm."""
    rough = _smooth_noise(rng, scene.shape, scene.vs, 40.0)
    rough *= np.float32(_ROUGHNESS_NM)
    objects = scene.ids > 0
    scene.sdf[objects] += rough[objects]
    dp += rough
    dn += rough


def write_cell(
    path: str | os.PathLike,
    shape: tuple[int, int, int] = (256, 256, 256),
    voxel_size: tuple[int, int, int] = (5, 5, 5),
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, float]:
    """Generate a cell and write it as a new zarr container at ``path``.

    Layout: ``volumes/raw`` (uint8), ``volumes/labels/<organelle>`` (uint8 0/1, one per name in
    ``ORGANELLES``) and ``volumes/mask`` (the cell), all with voxel size ``voxel_size`` (nm,
    z, y, x) and offset 0. The container is built in a temporary folder and moved into place, so
    an interrupted run leaves nothing behind; an existing ``path`` is replaced only with
    ``overwrite``. Returns the fraction of voxels in each label.
    """
    from incasem.atomic import atomic_folder
    from incasem.io.arrays import create_array

    cell = generate_cell(shape, seed=seed, voxel_size=voxel_size)
    attrs = {"generator": "incasem.phantom", "seed": seed}
    datasets = {"volumes/raw": cell.raw, "volumes/mask": cell.cell_mask}
    datasets.update({f"volumes/labels/{name}": data for name, data in cell.labels.items()})
    with atomic_folder(path, overwrite=overwrite) as tmp:
        for dataset, data in datasets.items():
            array = create_array(tmp, dataset, data.shape, cell.voxel_size, attrs=attrs)
            array[array.roi] = data
    return {name: float(data.mean()) for name, data in cell.labels.items()}
