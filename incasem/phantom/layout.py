"""The framing of the field of view: the plasma membrane with resin outside and a cap of nucleus
opposite, at least ``_MIN_CYTOPLASM_NM`` apart.
"""

from __future__ import annotations

import numpy as np

from incasem.phantom.fields import _perpendicular, _smooth_noise, _unit
from incasem.phantom.parameters import _MIN_CYTOPLASM_NM, _NUCLEUS_FRACTION, _RESIN_FRACTION
from incasem.phantom.scene import _Scene


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
