"""Nuclear pores: their places on the middle surface of the envelope and their local frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from incasem.phantom.fields import _unit
from incasem.phantom.parameters import (
    _NE_LUMEN_NM,
    _NE_MEMBRANE_NM,
    _PORE_RADIUS_NM,
    _PORES_PER_UM2,
)
from incasem.phantom.scene import _Scene


@dataclass(frozen=True)
class _Pore:
    center: np.ndarray  # nm, (z, y, x), on the middle surface of the envelope
    normal: np.ndarray  # unit, pointing out of the nucleus
    radius: float  # nm


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
