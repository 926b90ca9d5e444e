"""The scene: one global signed distance field (nm) holding the union of everything placed so
far, the object ids and crista coordinates, and each object's material.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from incasem.phantom.parameters import _GAP_NM

_Piece = tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray | None]
"""Part of an object: its voxel box, signed distance there (nm), optional crista coordinate."""


_FAR = np.float32(1e6)


@dataclass(frozen=True)
class _Material:
    cls: int  # index into ORGANELLES
    lumen: float  # intensity inside (lumen or matrix)
    membrane_nm: float
    ims_nm: float  # gap between the two membranes of a double membrane; 0 for a single one
    rough: bool  # studded with ribosomes


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
