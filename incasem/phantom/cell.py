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
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

# Label names, in the order of ``PhantomCell.labels``.
ORGANELLES: tuple[str, ...] = (
    "mito",
    "er",
    "golgi",
    "vesicles",
    "nucleus",
    "nuclear_pores",
    "plasma_membrane",
)

_MITO, _ER, _GOLGI, _VESICLE = (ORGANELLES.index(n) for n in ("mito", "er", "golgi", "vesicles"))

_Piece = tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray | None]
"""Part of an object: its voxel box, signed distance there (nm), optional crista coordinate."""

_FAR = np.float32(1e6)

# Geometry (nm).
_GAP_NM = 12.0  # least cytoplasm between two organelles (membrane contact sites are 10-30 nm)
_MARGIN_NM = 12.0  # how far outside an object its distance field is evaluated (>= _GAP_NM)
_MEMBRANE_NM = 9.0  # stained lipid bilayer
_PM_NM = 10.0  # plasma membrane
_MITO_IMS_NM = 8.0  # mitochondrial intermembrane space
_CRISTA_HALF_NM = 12.0  # half-width of a crista: two membranes around a narrow lumen
_CRISTA_WARP_NM = 60.0  # bending of the cristae lamellae
_NE_MEMBRANE_NM = 8.0  # each membrane of the nuclear envelope
_NE_LUMEN_NM = 30.0  # perinuclear space
_MITO_RADIUS_NM = (150.0, 350.0)
_PORE_RADIUS_NM = (45.0, 55.0)
_PORE_EXTENSION_NM = 20.0  # cytoplasmic filaments / nuclear basket beyond the envelope
_ROUGHNESS_NM = 3.0  # standard deviation of membrane positions around the smooth shapes
_MIN_CYTOPLASM_NM = 450.0  # least distance between plasma membrane and nucleus along the layout

# Framing: fractions of the box that are resin and nucleus (before the cytoplasm minimum).
_RESIN_FRACTION = (0.10, 0.18)
_NUCLEUS_FRACTION = (0.15, 0.25)

# Densities (per µm³ of cytoplasm, per µm² of surface).
_MITO_VOLUME_FRACTION = (0.08, 0.14)
_GOLGI_PER_UM3 = 0.4
_ER_SHEETS_PER_UM3 = 1.5
_ER_TUBULE_UM_PER_UM3 = 6.0
_VESICLES_PER_UM3 = 120.0
_MIN_VESICLES = 3
_PORES_PER_UM2 = 10.0
_RIBOSOMES_PER_UM3 = 6000.0
_BOUND_RIBOSOMES_PER_UM2 = 500.0

# Noise-free intensities, 0 = black, 1 = white.
_I_RESIN = 0.86
_I_CYTOPLASM = 0.68
_I_MEMBRANE = 0.04
_I_NUCLEOPLASM = 0.60
_I_HETEROCHROMATIN = 0.36
_I_PERINUCLEAR = 0.66
_I_MATRIX = 0.47
_I_MITO_IMS = 0.56
_I_CRISTA_MEMBRANE = 0.16
_I_CRISTA_LUMEN = 0.52
_I_ER_LUMEN = 0.62
_I_GOLGI_LUMEN = 0.55
_I_VESICLE_CLEAR = 0.74
_I_VESICLE_DENSE = 0.28
_I_PORE = 0.34
_I_PORE_FILAMENTS = 0.50
_RIBOSOME_DARKNESS = 0.35
_RIBOSOME_SIGMA_NM = 7.0
_TEXTURE_STD = 0.035
_CYTOPLASM_VARIATION = 0.025
_BLOTCH_STD = 0.045  # stain granularity at the 50 nm scale

# Imaging.
_PSF_SIGMA_NM = 5.5
_DOSE = 110.0  # detected electrons at white; shot-noise variance = intensity / dose
_READ_NOISE = 0.02
_CURTAIN_AMPLITUDE = 0.04


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


@dataclass(frozen=True)
class _Material:
    cls: int  # index into ORGANELLES
    lumen: float  # intensity inside (lumen or matrix)
    membrane_nm: float
    ims_nm: float  # gap between the two membranes of a double membrane; 0 for a single one
    rough: bool  # studded with ribosomes


@dataclass(frozen=True)
class _Pore:
    center: np.ndarray  # nm, (z, y, x), on the middle surface of the envelope
    normal: np.ndarray  # unit, pointing out of the nucleus
    radius: float  # nm


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

    cyto_um3 = float(np.count_nonzero(scene.sdf > 0)) * scene.voxel_um3
    _add_mitochondria(rng, scene, cyto_um3)
    golgi_vesicles = _add_golgi(rng, scene, cyto_um3)
    _add_er_sheets(rng, scene, cyto_um3)
    _add_er_tubules(rng, scene, cyto_um3)
    _add_vesicles(rng, scene, cyto_um3, golgi_vesicles)
    # Membrane roughness at the 40 nm scale on every surface.
    rough = _smooth_noise(rng, scene.shape, scene.vs, 40.0)
    rough *= np.float32(_ROUGHNESS_NM)
    objects = scene.ids > 0
    scene.sdf[objects] += rough[objects]
    dp += rough
    dn += rough
    del rough, objects
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


class _Scene:
    """Global distance field, object ids and lookup tables of all placed organelles."""

    def __init__(self, shape: tuple[int, int, int], vs: np.ndarray) -> None:
        self.shape = shape
        self.vs = vs
        self.extent = vs * (np.asarray(shape) - 1)  # nm position of the last voxel centre
        self.voxel_um3 = float(np.prod(vs)) * 1e-9
        self.sdf = np.empty(shape, np.float32)
        self.ids = np.zeros(shape, np.int32)
        self.crista = np.full(shape, _FAR, np.float32)
        self.materials: list[_Material] = []

    def box(self, lo_nm: np.ndarray, hi_nm: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering [lo_nm, hi_nm] clipped to the volume, None if outside."""
        lo = np.maximum(np.floor(lo_nm / self.vs).astype(int), 0)
        hi = np.minimum(np.ceil(hi_nm / self.vs).astype(int) + 1, self.shape)
        if np.any(hi <= lo):
            return None
        return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])

    def grid(self, sl: tuple[slice, slice, slice]) -> list[np.ndarray]:
        """Broadcastable nm coordinates (z, y, x) of the voxel centres in ``sl``."""
        out = []
        for ax, s in enumerate(sl):
            c = np.arange(s.start, s.stop, dtype=np.float32) * np.float32(self.vs[ax])
            out.append(c.reshape([-1 if a == ax else 1 for a in range(3)]))
        return out

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Whether nm points (n, 3) lie inside the volume."""
        return np.all((points >= 0) & (points <= self.extent), axis=1)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Distance (nm) from points (n, 3) to the nearest placed structure; +inf outside."""
        out = np.full(len(points), np.inf)
        ok = self.inside(points)
        idx = np.rint(points[ok] / self.vs).astype(int)
        out[ok] = self.sdf[idx[:, 0], idx[:, 1], idx[:, 2]]
        return out

    def free_point(self, rng: np.random.Generator, clearance_nm: float) -> np.ndarray | None:
        """A uniformly drawn point (nm) at least ``clearance_nm`` from any structure, or None."""
        for _ in range(4):
            points = rng.uniform(0.0, 1.0, (64, 3)) * self.extent
            good = np.flatnonzero(self.clearance(points) > clearance_nm)
            if len(good):
                return points[good[0]]
        return None

    def first_collision(self, pieces: list[_Piece]) -> int | None:
        """Index of the first piece that comes closer than the gap to a placed structure."""
        for i, (sl, d, _) in enumerate(pieces):
            if np.any(d + self.sdf[sl] < _GAP_NM):
                return i
        return None

    def commit(self, pieces: list[_Piece], material: _Material) -> float:
        """Add an object (union of pieces) to the global field and tables; returns its volume
        inside the box in µm³."""
        self.materials.append(material)
        oid = len(self.materials)
        voxels = 0
        for sl, d, crista in pieces:
            cur = self.sdf[sl]
            voxels += int(np.count_nonzero((d <= 0) & (cur > 0)))
            win = d < cur
            cur[win] = d[win]
            self.ids[sl][win] = oid
            if crista is not None:
                self.crista[sl][win] = crista[win]
        return voxels * self.voxel_um3

    def table(self, attr: str, dtype: type) -> np.ndarray:
        """Per-object lookup table indexed by object id (id 0: no object)."""
        values = [getattr(m, attr) for m in self.materials]
        return np.asarray([0, *values], dtype=dtype)


# ----------------------------------------------------------------------------------- helpers


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _perpendicular(rng: np.random.Generator, axis: np.ndarray) -> np.ndarray:
    v = rng.standard_normal(3)
    return _unit(v - (v @ axis) * axis)


def _gaussian_kernel(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """The normalised 1-D kernel that ``scipy.ndimage.gaussian_filter`` uses."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * x**2 / max(sigma, 1e-6) ** 2)
    return k / k.sum()


def _resample_axis(arr: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``arr`` along ``axis`` at fractional indices ``coords``."""
    i0 = np.floor(coords).astype(int)
    f = (coords - i0).astype(np.float32)
    shape = [1] * arr.ndim
    shape[axis] = -1
    f = f.reshape(shape)
    return np.take(arr, i0, axis=axis) * (1 - f) + np.take(arr, i0 + 1, axis=axis) * f


def _smooth_noise(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    vs: np.ndarray,
    corr_nm: float | tuple[float, ...],
) -> np.ndarray:
    """Random field (float32, ``shape``) of about unit variance, smooth over ``corr_nm`` (nm, one
    value or one per axis).

    Drawn on a coarse grid (spacing corr/3) and linearly interpolated, which is far cheaper than
    filtering a full-resolution field with a wide kernel. The variance is normalised analytically,
    not by the sample, so tiny volumes get the same statistics as large ones.
    """
    step = np.broadcast_to(np.asarray(corr_nm, dtype=float), (len(shape),)) / 3.0
    n_coarse = np.maximum(np.ceil((np.asarray(shape) - 1) * vs / step).astype(int) + 2, 10)
    coarse = ndi.gaussian_filter(rng.standard_normal(n_coarse), 1.0, mode="wrap")
    coarse /= np.sum(_gaussian_kernel(1.0, 4.0) ** 2) ** (len(shape) / 2)
    coarse = coarse.astype(np.float32)
    for ax in range(len(shape)):
        coarse = _resample_axis(coarse, ax, np.arange(shape[ax]) * vs[ax] / step[ax])
    return coarse


def _footprint(field: np.ndarray, idx: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """Half extent (nm) of a voxel along the normal of ``field`` at flat indices ``idx``."""
    flat = field.reshape(-1)
    coords = np.unravel_index(idx, field.shape)
    strides = (field.shape[1] * field.shape[2], field.shape[2], 1)
    grads = []
    for ax in range(3):
        up = coords[ax] < field.shape[ax] - 1
        down = coords[ax] > 0
        span = (up.astype(np.float32) + down) * np.float32(vs[ax])
        diff = flat[idx + strides[ax] * up] - flat[idx - strides[ax] * down]
        grads.append(diff / np.maximum(span, 1e-3))
    norm = np.sqrt(grads[0] ** 2 + grads[1] ** 2 + grads[2] ** 2) + 1e-6
    return 0.5 * sum(np.abs(g) * np.float32(v) for g, v in zip(grads, vs, strict=True)) / norm


def _membranes(
    d: np.ndarray,
    half: np.ndarray,
    weight: np.ndarray,
    gap: np.ndarray,
    lumen: np.ndarray,
    between: np.ndarray,
    outside: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Intensity of voxels at signed distance ``d`` <= 0 inside a single or double membrane.

    ``half`` is the effective membrane half-thickness (nm), ``weight`` the darkness factor of a
    box-filtered membrane, ``gap`` the space between the membranes of a double membrane (0: single
    membrane) whose intensity is ``between``. Returns the intensity and the mask of voxels deeper
    than all membranes (lumen or matrix).
    """
    outer = d >= -2 * half
    inner_top = -2 * half - gap
    double = gap > 0
    space = double & ~outer & (d >= inner_top)
    inner = double & (d < inner_top) & (d >= inner_top - 2 * half)
    lumen_mask = ~(outer | space | inner)
    out = lumen.astype(np.float32).copy()
    out[space] = between[space]
    outer_bg = (outside + np.where(double, between, lumen)) / 2
    inner_bg = (between + lumen) / 2
    out[outer] = (outer_bg + (_I_MEMBRANE - outer_bg) * weight)[outer]
    out[inner] = (inner_bg + (_I_MEMBRANE - inner_bg) * weight)[inner]
    return out, lumen_mask


# ---------------------------------------------------------------------------------- layout


def _boundaries(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances (nm, float32) to the plasma membrane (>0 outside the cell) and to the
    nucleus (<0 inside)."""
    angle = rng.uniform(0, 2 * np.pi)
    normal = _unit(np.array([rng.uniform(-0.3, 0.3), np.cos(angle), np.sin(angle)]))
    lateral = _perpendicular(rng, normal) * rng.uniform(0.0, 0.3)
    radius = rng.uniform(2500.0, 4000.0)
    f_resin = rng.uniform(*_RESIN_FRACTION)
    f_nucleus = rng.uniform(*_NUCLEUS_FRACTION)
    amp_pm, amp_ne = rng.uniform(30.0, 70.0), rng.uniform(15.0, 40.0)

    centre = scene.extent / 2
    axes = [np.linspace(0, e, 12) for e in scene.extent]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3) - centre
    xi = pts @ normal
    xi_pm = np.quantile(xi, 1 - f_resin)

    def nucleus_centre(xi_ne: float) -> np.ndarray:
        return normal * (xi_ne - radius) + lateral * radius

    lo, hi = xi.min() - 1.0, xi.max()  # bisection on the envelope's outermost position
    for _ in range(40):
        mid = (lo + hi) / 2
        frac = np.mean(np.linalg.norm(pts - nucleus_centre(mid), axis=1) < radius)
        lo, hi = (mid, hi) if frac < f_nucleus else (lo, mid)
    xi_ne = lo
    deficit = _MIN_CYTOPLASM_NM - (xi_pm - xi_ne)
    if deficit > 0:
        xi_pm += deficit / 2
        xi_ne -= deficit / 2
    c_nuc = nucleus_centre(xi_ne) + centre

    wobble = _smooth_noise(rng, scene.shape, scene.vs, 500.0)
    z, y, x = scene.grid(
        (slice(0, scene.shape[0]), slice(0, scene.shape[1]), slice(0, scene.shape[2]))
    )
    n32 = normal.astype(np.float32)
    c32 = centre.astype(np.float32)
    dp = (z - c32[0]) * n32[0] + (y - c32[1]) * n32[1] + (x - c32[2]) * n32[2]
    dp += np.float32(-xi_pm) + np.float32(amp_pm) * wobble
    cn = c_nuc.astype(np.float32)
    dn = np.sqrt((z - cn[0]) ** 2 + (y - cn[1]) ** 2 + (x - cn[2]) ** 2)
    dn += np.float32(-radius) + np.float32(amp_ne) * wobble
    return dp, dn


# ------------------------------------------------------------------------------ primitives


def _capsule(
    scene: _Scene, a: np.ndarray, b: np.ndarray, ra: float, rb: float
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """Signed distance (nm) to a capsule with radii ``ra`` at ``a`` and ``rb`` at ``b``.

    Returns the voxel box, the distance, and cylinder coordinates around the infinite line
    through ``a`` and ``b``: the axial parameter t (0 at ``a``, 1 at ``b``) and the radial vector
    (nm, (z, y, x) components) perpendicular to the line.
    """
    pad = max(ra, rb) + _MARGIN_NM
    sl = scene.box(np.minimum(a, b) - pad, np.maximum(a, b) + pad)
    if sl is None:
        return None
    z, y, x = scene.grid(sl)
    ab = (b - a).astype(np.float32)
    length2 = max(float(ab @ ab), 1e-6)
    pz, py, px = z - np.float32(a[0]), y - np.float32(a[1]), x - np.float32(a[2])
    t = (pz * ab[0] + py * ab[1] + px * ab[2]) / np.float32(length2)
    radial = [pz - t * ab[0], py - t * ab[1], px - t * ab[2]]
    tc = np.clip(t, 0, 1)
    dist = np.sqrt((pz - tc * ab[0]) ** 2 + (py - tc * ab[1]) ** 2 + (px - tc * ab[2]) ** 2)
    d = dist - (np.float32(ra) + tc * np.float32(rb - ra))
    return sl, d, t, radial


@dataclass(frozen=True)
class _Cristae:
    spacing: float  # nm between lamellae along the axis
    phase: float  # nm
    warp: np.ndarray  # unit-variance smooth field over the whole volume
    warp_nm: float  # how far (nm, along the axis) the field bends the lamellae
    directions: np.ndarray  # (k, 3) side each crista grows from
    depth: np.ndarray  # (k,) fraction of the diameter it spans
    reference: np.ndarray  # unit vector that fixes angle 0 around the axis
    spoke_phase: float  # rad
    spoke_depth: np.ndarray  # (m,) fraction of the radius each longitudinal crista spans


def _crista_coordinate(
    scene: _Scene,
    cristae: _Cristae,
    sl: tuple[slice, slice, slice],
    t: np.ndarray,
    radial: list[np.ndarray],
    s_start: float,
    seg: np.ndarray,
    r_loc: np.ndarray,
) -> np.ndarray:
    """Distance to the nearest crista over the crista half-width; _FAR off the cristae.

    Two families of lamellae, both bent by the smooth warp field so that any cut shows curved
    cristae: transverse ones, the level sets f = (k + 1/2) * spacing of f = arc length + warp_nm *
    warp, each growing from one side of the inner membrane across part of the diameter; and a few
    longitudinal ones, half-planes through the axis that reach part of the way to the centre.
    """
    seg_len = float(np.linalg.norm(seg))
    axis = seg / max(seg_len, 1e-6)
    warp = cristae.warp[sl]
    f = np.float32(s_start - cristae.phase) + t * np.float32(seg_len)
    f += np.float32(cristae.warp_nm) * warp
    grad = [
        np.gradient(warp, float(v), axis=ax) if warp.shape[ax] > 1 else np.zeros_like(warp)
        for ax, v in enumerate(scene.vs)
    ]
    slope = np.sqrt(
        sum(
            (np.float32(a) + np.float32(cristae.warp_nm) * g) ** 2
            for a, g in zip(axis, grad, strict=True)
        )
    )
    k = np.clip(np.floor(f / cristae.spacing), 0, len(cristae.depth) - 1).astype(np.int32)
    e = cristae.directions - np.outer(cristae.directions @ axis, axis)
    e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-6
    e = e.astype(np.float32)
    q = radial[0] * e[k, 0] + radial[1] * e[k, 1] + radial[2] * e[k, 2]
    u = (f - (k + np.float32(0.5)) * np.float32(cristae.spacing)) / np.maximum(slope, 0.2)
    half = np.float32(max(_CRISTA_HALF_NM, 0.5 * float(np.abs(axis) @ scene.vs)))
    on = q >= r_loc * (1 - 2 * cristae.depth[k])
    transverse = np.where(on, np.abs(u) / half, _FAR)

    e1 = _unit(cristae.reference - (cristae.reference @ axis) * axis).astype(np.float32)
    e2 = np.cross(axis, e1).astype(np.float32)
    rho = np.sqrt(radial[0] ** 2 + radial[1] ** 2 + radial[2] ** 2)
    theta = np.arctan2(
        radial[0] * e2[0] + radial[1] * e2[1] + radial[2] * e2[2],
        radial[0] * e1[0] + radial[1] * e1[1] + radial[2] * e1[2],
    )
    theta += np.float32(cristae.warp_nm) / np.maximum(r_loc, 1) * warp
    n_spokes = len(cristae.spoke_depth)
    pitch = np.float32(2 * np.pi / n_spokes)
    j = np.round((theta - np.float32(cristae.spoke_phase)) / pitch)
    offset = theta - np.float32(cristae.spoke_phase) - j * pitch
    spoke = np.mod(j, n_spokes).astype(np.int32)
    on = rho >= r_loc * (1 - cristae.spoke_depth[spoke])
    longitudinal = np.where(on, rho * np.abs(np.sin(offset)) / half, _FAR)
    return np.minimum(transverse, longitudinal)


def _cap_stack(
    scene: _Scene,
    centre: np.ndarray,
    axes: np.ndarray,
    radii: np.ndarray,
    half_arcs: np.ndarray,
    lobes: np.ndarray,
    half_thick: float,
    rim_half_thick: float,
) -> _Piece | None:
    """Signed distance (nm) to a stack of thick spherical caps around one centre.

    Cap k lies on the sphere of radius ``radii[k]`` around its pole direction ``axes[k]`` and
    extends ``half_arcs[k]`` nm of arc from the pole, modulated around the pole by the Fourier
    coefficients ``lobes[k]`` (cos, sin of the first and second harmonic) so the outline is
    irregular. The lumen half-thickness grows from ``half_thick`` to ``rim_half_thick`` at the rim
    (dilated Golgi rims). Models flattened Golgi cisternae and ER sheets.
    """
    mean_axis = _unit(axes.mean(axis=0))
    mid_pole = centre + mean_axis * radii.mean()
    pad = half_arcs.max() * (1 + np.abs(lobes).sum(axis=1).max()) + rim_half_thick + _MARGIN_NM
    pad += (radii.max() - radii.min()) / 2
    sl = scene.box(mid_pole - pad, mid_pole + pad)
    if sl is None:
        return None
    z, y, x = scene.grid(sl)
    pz, py, px = z - np.float32(centre[0]), y - np.float32(centre[1]), x - np.float32(centre[2])
    rho = np.sqrt(pz**2 + py**2 + px**2).reshape(-1)
    d = np.full(rho.shape, _FAR, np.float32)
    shell = np.float32(rim_half_thick + _MARGIN_NM)
    u = _unit(np.cross(mean_axis, np.eye(3)[np.argmin(np.abs(mean_axis))]))
    v = np.cross(mean_axis, u)
    rim_width = np.float32(40.0)
    for a_k, r_k, arc_k, lobe_k in zip(axes, radii, half_arcs, lobes, strict=True):
        # Only voxels near the sphere of this cap can be within the margin.
        sel = np.flatnonzero(np.abs(rho - np.float32(r_k)) < shell)
        iz, iy, ix = np.unravel_index(sel, pz.shape[:1] + py.shape[1:2] + px.shape[2:])
        q = np.stack([pz[iz, 0, 0], py[0, iy, 0], px[0, 0, ix]], axis=1)
        r_sel = rho[sel] + np.float32(1e-3)
        sigma = np.arccos(np.clip(q @ a_k.astype(np.float32) / r_sel, -1, 1)) * np.float32(r_k)
        theta = np.arctan2(q @ v.astype(np.float32), q @ u.astype(np.float32))
        shape = (
            1
            + lobe_k[0] * np.cos(theta)
            + lobe_k[1] * np.sin(theta)
            + lobe_k[2] * np.cos(2 * theta)
            + lobe_k[3] * np.sin(2 * theta)
        )
        edge = np.float32(arc_k) * np.maximum(shape, 0.4).astype(np.float32)
        over = np.maximum(sigma - edge, 0)
        rim = np.clip((sigma - edge + rim_width) / rim_width, 0, 1)
        half = np.float32(half_thick) + np.float32(rim_half_thick - half_thick) * rim
        d[sel] = np.minimum(d[sel], np.sqrt(over**2 + (r_sel - np.float32(r_k)) ** 2) - half)
    return sl, d.reshape(pz.shape[0], py.shape[1], px.shape[2]), None


def _cap_points(
    centre: np.ndarray, axes: np.ndarray, radii: np.ndarray, half_arcs: np.ndarray
) -> np.ndarray:
    """A fixed pattern of points (nm, (n, 3)) on the caps of ``_cap_stack``."""
    points = []
    for a_k, r_k, arc_k in zip(axes, radii, half_arcs, strict=True):
        u = _unit(np.cross(a_k, np.eye(3)[np.argmin(np.abs(a_k))]))
        v = np.cross(a_k, u)
        for frac in (0.0, 0.45, 0.9):
            phi = frac * arc_k / r_k
            for theta in np.linspace(0, 2 * np.pi, 8, endpoint=False):
                side = np.cos(theta) * u + np.sin(theta) * v
                points.append(centre + r_k * (np.cos(phi) * a_k + np.sin(phi) * side))
    return np.asarray(points)


def _sphere(scene: _Scene, c: np.ndarray, r: float) -> _Piece | None:
    pad = r + _MARGIN_NM
    sl = scene.box(c - pad, c + pad)
    if sl is None:
        return None
    z, y, x = scene.grid(sl)
    d = np.sqrt(
        (z - np.float32(c[0])) ** 2 + (y - np.float32(c[1])) ** 2 + (x - np.float32(c[2])) ** 2
    ) - np.float32(r)
    return sl, d, None


def _grow(
    rng: np.random.Generator,
    scene: _Scene,
    start: np.ndarray,
    heading: np.ndarray,
    steps: int,
    step_nm: float,
    clearance_nm: float,
) -> np.ndarray:
    """Persistent random walk (nm) from ``start`` that stops before any point of a new segment
    comes closer than ``clearance_nm`` to a placed structure; at most ``steps + 1`` nodes."""
    nodes = _walk(rng, start, heading, steps, step_nm, 0.4)
    for i in range(1, len(nodes)):
        samples = np.linspace(nodes[i - 1], nodes[i], 6)
        if np.any(scene.clearance(samples) < clearance_nm):
            return nodes[:i]
    return nodes


def _walk(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    steps: int,
    step_nm: float,
    bend: float,
) -> np.ndarray:
    """Persistent random walk (nm): ``steps + 1`` nodes from ``start``."""
    nodes = [start]
    for _ in range(steps):
        direction = _unit(direction + bend * rng.standard_normal(3))
        nodes.append(nodes[-1] + step_nm * direction)
    return np.asarray(nodes)


# ------------------------------------------------------------------------------ organelles


def _add_mitochondria(rng: np.random.Generator, scene: _Scene, cyto_um3: float) -> None:
    """Curved tubes 300-700 nm across with a double membrane and lamellar cristae."""
    target_um3 = rng.uniform(*_MITO_VOLUME_FRACTION) * cyto_um3
    warp = _smooth_noise(rng, scene.shape, scene.vs, 200.0)
    r_min, r_max = _MITO_RADIUS_NM
    placed_um3, placed = 0.0, 0
    for _ in range(60):
        if placed and placed_um3 >= target_um3:
            break
        start = scene.free_point(rng, 1.15 * r_min + _GAP_NM)
        if start is None:
            continue
        room = (scene.clearance(start[None])[0] - _GAP_NM) / 1.15
        r0 = rng.uniform(r_min, min(r_max, room))
        length = rng.uniform(0.0, 4.0) * r0
        n_seg = max(1, int(np.ceil(length / 250.0)))
        heading = _unit(rng.standard_normal(3))
        clearance = 1.15 * r0 + _GAP_NM
        ahead = _grow(rng, scene, start, heading, n_seg - n_seg // 2, length / n_seg, clearance)
        behind = _grow(rng, scene, start, -heading, n_seg // 2, length / n_seg, clearance)
        nodes = np.concatenate([behind[::-1], ahead[1:]]) if len(ahead) > 1 else behind[::-1]
        if len(nodes) == 1:
            nodes = np.stack([start - 0.5 * heading, start + 0.5 * heading])
        radii = r0 * np.clip(1 + 0.08 * rng.standard_normal(len(nodes)), 0.85, 1.15)
        spacing = rng.uniform(45.0, 80.0)
        n_cristae = int((length + 2 * _CRISTA_WARP_NM + 2.4 * r0) / spacing) + 3
        cristae = _Cristae(
            spacing=spacing,
            phase=-rng.uniform(0.0, spacing) - _CRISTA_WARP_NM - 1.2 * r0,
            warp=warp,
            warp_nm=_CRISTA_WARP_NM,
            directions=rng.standard_normal((n_cristae, 3)),
            depth=rng.uniform(0.5, 1.0, n_cristae).astype(np.float32),
            reference=_unit(rng.standard_normal(3)),
            spoke_phase=rng.uniform(0, 2 * np.pi),
            spoke_depth=rng.uniform(0.3, 0.8, int(rng.integers(2, 6))).astype(np.float32),
        )
        pieces: list[_Piece] = []
        s_start = 0.0
        for i in range(len(nodes) - 1):
            cap = _capsule(scene, nodes[i], nodes[i + 1], radii[i], radii[i + 1])
            seg = nodes[i + 1] - nodes[i]
            if cap is not None:
                sl, d, t, radial = cap
                r_loc = np.float32(radii[i]) + np.clip(t, 0, 1) * np.float32(
                    radii[i + 1] - radii[i]
                )
                crista = _crista_coordinate(scene, cristae, sl, t, radial, s_start, seg, r_loc)
                pieces.append((sl, d, crista))
            s_start += float(np.linalg.norm(seg))
        if not pieces or scene.first_collision(pieces) is not None:
            continue
        placed_um3 += scene.commit(
            pieces, _Material(_MITO, _I_MATRIX, _MEMBRANE_NM, _MITO_IMS_NM, False)
        )
        placed += 1


def _add_golgi(rng: np.random.Generator, scene: _Scene, cyto_um3: float) -> list[np.ndarray]:
    """Stacks of 3-7 curved cisternae with dilated rims; returns budding-vesicle centres (nm)."""
    target = max(1, int(round(_GOLGI_PER_UM3 * cyto_um3)))
    vesicles: list[np.ndarray] = []
    placed, failures = 0, 0
    for _ in range(40 * target):
        if placed >= target:
            break
        # Where space is tight (small crops), try ever smaller stacks.
        scale = max(0.4, 0.96**failures)
        failures += 1
        n = max(3, int(round(int(rng.integers(4, 8)) * scale)))
        r_inner = rng.uniform(300.0, 700.0)
        spacing = rng.uniform(55.0, 70.0)
        arc0 = rng.uniform(180.0, 380.0) * scale
        half, rim_half = rng.uniform(10.0, 14.0), rng.uniform(18.0, 28.0)
        k = np.arange(n)
        radii = r_inner + spacing * k
        half_arcs = arc0 * (1 - 0.12 * np.abs(k - (n - 1) / 2)) * rng.uniform(0.85, 1.1, n)
        axis = _unit(rng.standard_normal(3))
        axes = np.array([_unit(axis + 0.06 * rng.standard_normal(3)) for _ in range(n)])
        lobes = rng.normal(0.0, 0.12, (n, 4))
        pole = scene.free_point(rng, 60.0)
        if pole is None:
            continue
        centre = pole - axis * radii.mean()
        probe = _cap_points(centre, axes, radii, half_arcs)
        if np.any(scene.clearance(probe) < rim_half + _GAP_NM):
            continue
        piece = _cap_stack(scene, centre, axes, radii, half_arcs, lobes, half, rim_half)
        if piece is None or scene.first_collision([piece]) is not None:
            continue
        scene.commit([piece], _Material(_GOLGI, _I_GOLGI_LUMEN, _MEMBRANE_NM, 0.0, False))
        placed, failures = placed + 1, 0
        for r_k, arc_k in zip(radii, half_arcs, strict=True):
            for _ in range(int(rng.integers(1, 4))):
                side = _perpendicular(rng, axis)
                phi = (arc_k + rng.uniform(50.0, 90.0)) / r_k
                reach = r_k + rng.uniform(-30.0, 30.0)
                vesicles.append(centre + reach * (np.cos(phi) * axis + np.sin(phi) * side))
    return vesicles


def _add_er_sheets(rng: np.random.Generator, scene: _Scene, cyto_um3: float) -> None:
    """Gently curved rough-ER sheets, 30-60 nm lumen, a few hundred nm wide."""
    target = int(rng.poisson(_ER_SHEETS_PER_UM3 * cyto_um3))
    placed = 0
    for _ in range(6 * target):
        if placed >= target:
            break
        radius = rng.uniform(800.0, 2500.0)
        half_arc = rng.uniform(150.0, 450.0)
        half = rng.uniform(15.0, 30.0)
        lobes = rng.normal(0.0, 0.15, (1, 4))
        axis = _unit(rng.standard_normal(3))
        pole = scene.free_point(rng, half + _GAP_NM)
        if pole is None:
            continue
        centre, radii, arcs = pole - axis * radius, np.array([radius]), np.array([half_arc])
        if np.any(scene.clearance(_cap_points(centre, axis[None], radii, arcs)) < half + _GAP_NM):
            continue
        piece = _cap_stack(scene, centre, axis[None], radii, arcs, lobes, half, half)
        if piece is None or scene.first_collision([piece]) is not None:
            continue
        scene.commit([piece], _Material(_ER, _I_ER_LUMEN, _MEMBRANE_NM, 0.0, True))
        placed += 1


def _add_er_tubules(rng: np.random.Generator, scene: _Scene, cyto_um3: float) -> None:
    """Branched ER tubules 50-100 nm across; walks stop where they would touch something."""
    target_nm = _ER_TUBULE_UM_PER_UM3 * cyto_um3 * 1000.0
    placed_nm, placed = 0.0, 0
    step = 60.0
    for _ in range(400):
        if placed and placed_nm >= target_nm:
            break
        r = rng.uniform(25.0, 50.0)
        start = scene.free_point(rng, r + _GAP_NM)
        if start is None:
            continue
        steps = int(rng.uniform(300.0, 1500.0) / step)
        paths = [_walk(rng, start, _unit(rng.standard_normal(3)), steps, step, 0.3)]
        for _ in range(int(rng.integers(0, 3))):
            node = int(rng.integers(0, len(paths[0]) - 1))
            heading = _perpendicular(rng, _unit(paths[0][node + 1] - paths[0][node]))
            branch_steps = int(rng.uniform(150.0, 700.0) / step)
            paths.append(_walk(rng, paths[0][node], heading, branch_steps, step, 0.3))
        pieces: list[_Piece] = []
        length = 0.0
        for p, nodes in enumerate(paths):
            path_pieces: list[_Piece] = []
            for a, b in zip(nodes[:-1], nodes[1:], strict=True):
                inside = scene.inside(np.stack([a, b]))
                if not inside.any():
                    break
                cap = _capsule(scene, a, b, r, r)
                if cap is None:
                    break
                path_pieces.append((cap[0], cap[1], None))
            stop = scene.first_collision(path_pieces)
            path_pieces = path_pieces[:stop]
            if p == 0 and len(path_pieces) < 2:
                break
            pieces.extend(path_pieces)
            length += step * len(path_pieces)
        if not pieces:
            continue
        rough = bool(rng.uniform() < 0.3)
        scene.commit(pieces, _Material(_ER, _I_ER_LUMEN, _MEMBRANE_NM, 0.0, rough))
        placed_nm += length
        placed += 1


def _add_vesicles(
    rng: np.random.Generator, scene: _Scene, cyto_um3: float, golgi_vesicles: list[np.ndarray]
) -> None:
    """Spheres 40-100 nm across, clear or dense-core; first those budding from Golgi rims."""
    target = max(_MIN_VESICLES, int(round(_VESICLES_PER_UM3 * cyto_um3)))
    placed = 0
    candidates = iter(golgi_vesicles)
    for _ in range(4 * target + len(golgi_vesicles)):
        if placed >= target + len(golgi_vesicles):
            break
        r = rng.uniform(20.0, 50.0)
        dense = bool(rng.uniform() < 0.25)
        c = next(candidates, None)
        if c is None:
            c = scene.free_point(rng, r + _GAP_NM)
        if c is None or scene.clearance(c[None])[0] < r + _GAP_NM:
            continue
        piece = _sphere(scene, c, r)
        if piece is None or scene.first_collision([piece]) is not None:
            continue
        lumen = _I_VESICLE_DENSE if dense else _I_VESICLE_CLEAR
        scene.commit([piece], _Material(_VESICLE, lumen, _MEMBRANE_NM, 0.0, False))
        placed += 1


def _place_pores(rng: np.random.Generator, scene: _Scene, dn: np.ndarray) -> list[_Pore]:
    """Nuclear pores on the middle surface of the envelope, about 10 per µm², 120 nm apart."""
    e_half = _NE_MEMBRANE_NM + _NE_LUMEN_NM / 2
    shell = np.abs(dn + np.float32(e_half)) <= e_half
    area_um2 = float(np.count_nonzero(shell)) * scene.voxel_um3 / (2 * e_half * 1e-3)
    if area_um2 == 0:
        return []
    target = max(1, int(round(_PORES_PER_UM2 * area_um2)))
    candidates = np.flatnonzero(np.abs(dn + np.float32(e_half)) <= 0.5 * scene.vs.max())
    if len(candidates) == 0:
        return []
    pores: list[_Pore] = []
    for _ in range(20 * target):
        if len(pores) >= target:
            break
        idx = candidates[rng.integers(len(candidates))]
        radius = rng.uniform(*_PORE_RADIUS_NM)
        coords = np.array(np.unravel_index(idx, scene.shape), dtype=float)
        grad = []
        for ax in range(3):
            hi, lo = coords.copy(), coords.copy()
            hi[ax] = min(hi[ax] + 1, scene.shape[ax] - 1)
            lo[ax] = max(lo[ax] - 1, 0)
            span = max(hi[ax] - lo[ax], 1) * scene.vs[ax]
            grad.append((dn[tuple(hi.astype(int))] - dn[tuple(lo.astype(int))]) / span)
        normal = _unit(np.asarray(grad, dtype=float))
        centre = coords * scene.vs - (float(dn[tuple(coords.astype(int))]) + e_half) * normal
        if any(np.linalg.norm(centre - p.center) < 2.4 * (radius + p.radius) for p in pores):
            continue
        pores.append(_Pore(centre, normal, radius))
    return pores


def _pore_frame(
    scene: _Scene, pore: _Pore, dn: np.ndarray, reach: float
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray] | None:
    """Box around a pore with the axial (nm, out of the nucleus, 0 mid-envelope) and radial
    coordinates of its voxels."""
    sl = scene.box(pore.center - reach, pore.center + reach)
    if sl is None:
        return None
    z, y, x = scene.grid(sl)
    c, n = pore.center.astype(np.float32), pore.normal.astype(np.float32)
    pz, py, px = z - c[0], y - c[1], x - c[2]
    a = pz * n[0] + py * n[1] + px * n[2]
    rho = np.sqrt(np.maximum(pz**2 + py**2 + px**2 - a**2, 0))
    axial = dn[sl] + np.float32(_NE_MEMBRANE_NM + _NE_LUMEN_NM / 2)
    return sl, axial, rho


# ------------------------------------------------------------------------------- rendering


def _texture(rng: np.random.Generator, scene: _Scene, dn: np.ndarray) -> np.ndarray:
    """Granular cytoplasm: free ribosomes, ribosomes bound to rough ER and the outer nuclear
    membrane, and fine stain granularity, blurred to ribosome size (float32, darkness < 0)."""
    sigma = _RIBOSOME_SIGMA_NM / scene.vs
    kernels = [_gaussian_kernel(s) for s in sigma]
    peak = float(np.prod([k.max() for k in kernels]))
    energy = float(np.sqrt(np.prod([np.sum(k**2) for k in kernels])))

    tex = rng.standard_normal(scene.shape, dtype=np.float32)
    tex *= np.float32(_TEXTURE_STD / energy)
    flat = tex.reshape(-1)
    sdf = scene.sdf.reshape(-1)
    n_free = rng.poisson(_RIBOSOMES_PER_UM3 * scene.voxel_um3 * sdf.size)
    free = rng.integers(0, sdf.size, n_free)
    free = free[sdf[free] > 12.0]

    rough = scene.table("rough", bool)[scene.ids] | ((scene.ids == 0) & (dn < 14.0))
    band = np.flatnonzero(rough & (scene.sdf > 5.0) & (scene.sdf < 14.0))
    area_um2 = len(band) * scene.voxel_um3 / 9e-3
    bound = band[
        rng.integers(0, max(len(band), 1), rng.poisson(_BOUND_RIBOSOMES_PER_UM2 * area_um2))
    ]
    np.add.at(flat, np.concatenate([free, bound]), np.float32(-_RIBOSOME_DARKNESS / peak))
    return ndi.gaussian_filter(tex, sigma, truncate=3.0)


def _render(
    rng: np.random.Generator, scene: _Scene, dp: np.ndarray, dn: np.ndarray, pores: list[_Pore]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noise-free image (float32, 0 black .. 1 white) and uint8 labels."""
    vs = scene.vs
    tex = _texture(rng, scene, dn)
    image = _smooth_noise(rng, scene.shape, vs, 300.0)
    image *= np.float32(_CYTOPLASM_VARIATION)
    blotches = _smooth_noise(rng, scene.shape, vs, 50.0)
    blotches *= np.float32(_BLOTCH_STD)
    image += blotches
    del blotches
    image += np.float32(_I_CYTOPLASM)
    image += tex
    flat_img, flat_tex = image.reshape(-1), tex.reshape(-1)
    labels = {name: np.zeros(scene.shape, np.uint8) for name in ORGANELLES}

    # Nucleus: chromatin clumps and a patchy peripheral heterochromatin layer, excluded at pores.
    e_full = 2 * _NE_MEMBRANE_NM + _NE_LUMEN_NM
    chromatin = _smooth_noise(rng, scene.shape, vs, 150.0)
    depth = -dn - np.float32(e_full)
    periphery = np.clip((np.clip(60.0 + 50.0 * chromatin, 0, None) - depth) / 20.0, 0, 1)
    het = np.maximum(np.clip((chromatin - 0.9) / 0.5, 0, 1), periphery * (depth >= 0))
    del chromatin, periphery, depth
    for pore in pores:
        frame = _pore_frame(scene, pore, dn, 2 * pore.radius + 160.0)
        if frame is None:
            continue
        sl, axial, rho = frame
        near = (axial < 0) & (axial > -e_full - 150.0)
        keep = np.clip((rho - 1.5 * pore.radius) / (0.5 * pore.radius), 0, 1)
        het[sl] *= np.where(near, keep, 1).astype(np.float32)
    nuc = np.flatnonzero(dn < 0)
    flat_img[nuc] = (
        _I_NUCLEOPLASM
        + (_I_HETEROCHROMATIN - _I_NUCLEOPLASM) * het.reshape(-1)[nuc]
        + flat_tex[nuc]
    )
    del het
    labels["nucleus"].reshape(-1)[nuc] = 1

    t_ne = np.float32(_NE_MEMBRANE_NM / 2)
    h_max = max(float(t_ne), 0.5 * float(vs.sum()))
    env = np.flatnonzero((dn <= 0) & (dn >= -(4 * h_max + _NE_LUMEN_NM)))
    half = np.maximum(t_ne, _footprint(dn, env, vs))
    d_env = dn.reshape(-1)[env]
    n = len(env)
    value, deep = _membranes(
        d_env,
        half,
        t_ne / half,
        np.full(n, _NE_LUMEN_NM, np.float32),
        flat_img[env],
        np.full(n, _I_PERINUCLEAR, np.float32),
        _I_CYTOPLASM,
    )
    flat_img[env[~deep]] = value[~deep]

    # Extracellular resin and the plasma membrane.
    image[dp > 0] = np.float32(_I_RESIN)
    t_pm = np.float32(_PM_NM / 2)
    band = np.flatnonzero((dp <= 0) & (dp >= -2 * max(float(t_pm), 0.5 * float(vs.sum()))))
    half = np.maximum(t_pm, _footprint(dp, band, vs))
    on = dp.reshape(-1)[band] >= -2 * half
    bg = (flat_img[band] + np.float32(_I_RESIN)) / 2
    flat_img[band[on]] = (bg + (_I_MEMBRANE - bg) * (t_pm / half))[on]
    labels["plasma_membrane"].reshape(-1)[band[on]] = 1

    _render_objects(scene, flat_img, flat_tex, labels)

    _render_pores(scene, pores, dn, image, tex, labels, e_full)
    return image, labels


def _render_pores(
    scene: _Scene,
    pores: list[_Pore],
    dn: np.ndarray,
    image: np.ndarray,
    tex: np.ndarray,
    labels: dict[str, np.ndarray],
    e_full: float,
) -> None:
    """Nuclear pores, in place: the envelope's membranes (``e_full`` nm thick) fuse around a
    dense plug that protrudes into both compartments."""
    organelle = (scene.sdf <= 0) & (scene.ids > 0)
    vs = scene.vs
    for pore in pores:
        frame = _pore_frame(
            scene,
            pore,
            dn,
            pore.radius + _NE_MEMBRANE_NM + _PORE_EXTENSION_NM + 2 * float(vs.max()),
        )
        if frame is None:
            continue
        sl, axial, rho = frame
        e_half = np.float32(e_full / 2)
        in_env = np.abs(axial) <= e_half
        hole = rho < pore.radius
        plug = hole & in_env
        ring = (rho >= pore.radius) & (rho < pore.radius + _NE_MEMBRANE_NM) & in_env
        fringe = hole & ~in_env & (np.abs(axial) <= e_half + _PORE_EXTENSION_NM) & ~organelle[sl]
        img = image[sl]
        img[plug] = _I_PORE + tex[sl][plug]
        img[ring] = _I_MEMBRANE
        img[fringe] = _I_PORE_FILAMENTS + tex[sl][fringe]
        labels["nuclear_pores"][sl][plug | ring | fringe] = 1


def _render_objects(
    scene: _Scene, flat_img: np.ndarray, flat_tex: np.ndarray, labels: dict[str, np.ndarray]
) -> None:
    """Membranes, lumens and cristae of all placed organelles, and their labels."""
    if not scene.materials:
        return
    sdf, vs = scene.sdf.reshape(-1), scene.vs
    idx = np.flatnonzero((sdf <= 0) & (scene.ids.reshape(-1) > 0))
    oid = scene.ids.reshape(-1)[idx]
    d = sdf[idx]
    t_half = (scene.table("membrane_nm", np.float32) / 2)[oid]
    gap = scene.table("ims_nm", np.float32)[oid]
    lumen = scene.table("lumen", np.float32)[oid]
    half = t_half.copy()
    near = np.flatnonzero(d >= -(4 * 0.5 * float(vs.sum()) + gap))
    half[near] = np.maximum(t_half[near], _footprint(scene.sdf, idx[near], vs))
    between = np.where(gap > 0, np.float32(_I_MITO_IMS), lumen).astype(np.float32)
    value, deep = _membranes(d, half, t_half / half, gap, lumen, between, _I_CYTOPLASM)
    crista = scene.crista.reshape(-1)[idx]
    in_crista = deep & (crista < 1)
    value[in_crista] = np.where(
        crista[in_crista] < 0.35, np.float32(_I_CRISTA_LUMEN), np.float32(_I_CRISTA_MEMBRANE)
    )
    flat_img[idx] = value + flat_tex[idx]
    cls = scene.table("cls", np.int32)[oid]
    for code in (_MITO, _ER, _GOLGI, _VESICLE):
        labels[ORGANELLES[code]].reshape(-1)[idx[cls == code]] = 1


def _acquire(rng: np.random.Generator, image: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """FIB-SEM acquisition of the noise-free image: blur, drift, curtaining, noise, 8 bit."""
    z_sigma_nm = max(_PSF_SIGMA_NM, 0.4 * vs[0])
    sigma = np.array([z_sigma_nm, _PSF_SIGMA_NM, _PSF_SIGMA_NM]) / vs
    img = ndi.gaussian_filter(image, sigma, truncate=3.0)
    nz, ny, nx = img.shape

    # Slice-to-slice brightness drift (beam current, charging).
    drift = 1 + 0.015 * _smooth_noise(rng, (nz,), vs[:1], 400.0) + 0.004 * rng.standard_normal(nz)
    img *= drift.astype(np.float32)[:, None, None]

    # Curtaining: milling streaks along y, narrow in x, slowly changing with z, fading with depth.
    zx = vs[[0, 2]]
    stripes = _smooth_noise(rng, (nz, nx), zx, (600.0, 15.0))
    broad = _smooth_noise(rng, (nz, nx), zx, (900.0, 120.0))
    curtain = 0.7 * stripes + 0.5 * broad
    fade = 1.0 - 0.5 * np.arange(ny) / max(ny - 1, 1)
    img += (
        np.float32(_CURTAIN_AMPLITUDE)
        * curtain.astype(np.float32)[:, None, :]
        * fade.astype(np.float32)[None, :, None]
    )

    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= np.sqrt(np.clip(img, 0, 1) / np.float32(_DOSE) + np.float32(_READ_NOISE**2))
    img += noise
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


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
