"""The primitives organelles are built from, as signed distances (nm) in their bounding boxes:
capsules and their cristae, stacks of spherical caps, spheres, and persistent random walks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from incasem.phantom.fields import _unit
from incasem.phantom.parameters import _CRISTA_HALF_NM, _MARGIN_NM
from incasem.phantom.scene import _FAR, _Piece, _Scene


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
    half = np.float32(max(_CRISTA_HALF_NM, 0.5 * float(np.abs(axis) @ scene.vs)))
    f = np.float32(s_start - cristae.phase) + t * np.float32(seg_len)
    f += np.float32(cristae.warp_nm) * warp
    transverse = _transverse_cristae(scene, cristae, warp, axis, f, radial, r_loc, half)
    longitudinal = _longitudinal_cristae(cristae, warp, axis, radial, r_loc, half)
    return np.minimum(transverse, longitudinal)


def _transverse_cristae(
    scene: _Scene,
    cristae: _Cristae,
    warp: np.ndarray,
    axis: np.ndarray,
    f: np.ndarray,
    radial: list[np.ndarray],
    r_loc: np.ndarray,
    half: np.float32,
) -> np.ndarray:
    """Distance to the nearest transverse lamella (a level set of the warped arc length ``f``)
    over the crista half-width ``half`` (nm); _FAR where that lamella does not reach."""
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
    on = q >= r_loc * (1 - 2 * cristae.depth[k])
    return np.where(on, np.abs(u) / half, _FAR)


def _longitudinal_cristae(
    cristae: _Cristae,
    warp: np.ndarray,
    axis: np.ndarray,
    radial: list[np.ndarray],
    r_loc: np.ndarray,
    half: np.float32,
) -> np.ndarray:
    """Distance to the nearest longitudinal crista (a warped half-plane through the axis) over
    the crista half-width ``half`` (nm); _FAR where it does not reach."""
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
    return np.where(on, rho * np.abs(np.sin(offset)) / half, _FAR)


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
        edge = _cap_edge(theta, arc_k, lobe_k)
        over = np.maximum(sigma - edge, 0)
        rim = np.clip((sigma - edge + rim_width) / rim_width, 0, 1)
        half = np.float32(half_thick) + np.float32(rim_half_thick - half_thick) * rim
        d[sel] = np.minimum(d[sel], np.sqrt(over**2 + (r_sel - np.float32(r_k)) ** 2) - half)
    return sl, d.reshape(pz.shape[0], py.shape[1], px.shape[2]), None


def _cap_edge(theta: np.ndarray, half_arc: float, lobes: np.ndarray) -> np.ndarray:
    """Arc (nm) from the pole to a cap's rim at angles ``theta`` around the pole: ``half_arc``
    modulated by the first two harmonics ``lobes`` (cos, sin, cos 2, sin 2), at least 40 %."""
    shape = (
        1
        + lobes[0] * np.cos(theta)
        + lobes[1] * np.sin(theta)
        + lobes[2] * np.cos(2 * theta)
        + lobes[3] * np.sin(2 * theta)
    )
    return np.float32(half_arc) * np.maximum(shape, 0.4).astype(np.float32)


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
