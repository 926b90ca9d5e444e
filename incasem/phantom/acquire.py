"""The FIB-SEM acquisition of the noise-free picture: point spread, slice drift, curtaining,
shot and detector noise, 8 bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from incasem.phantom.fields import _smooth_noise
from incasem.phantom.parameters import _CURTAIN_AMPLITUDE, _DOSE, _PSF_SIGMA_NM, _READ_NOISE


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
