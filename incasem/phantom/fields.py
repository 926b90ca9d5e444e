"""Vector helpers and smooth random fields on the voxel grid (nm spacing ``vs``, z, y, x), and
the footprint of a voxel along a distance field's normal.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


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
