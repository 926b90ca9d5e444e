"""Placing the organelles in the scene by their densities: mitochondria, Golgi stacks, ER sheets
and tubules, and vesicles; each is drawn, tested against the placed ones and committed.
"""

from __future__ import annotations

import numpy as np

from incasem.phantom.fields import _perpendicular, _smooth_noise, _unit
from incasem.phantom.labels import _ER, _GOLGI, _MITO, _VESICLE
from incasem.phantom.parameters import (
    _CRISTA_WARP_NM,
    _ER_SHEETS_PER_UM3,
    _ER_TUBULE_UM_PER_UM3,
    _GAP_NM,
    _GOLGI_PER_UM3,
    _I_ER_LUMEN,
    _I_GOLGI_LUMEN,
    _I_MATRIX,
    _I_VESICLE_CLEAR,
    _I_VESICLE_DENSE,
    _MEMBRANE_NM,
    _MIN_VESICLES,
    _MITO_IMS_NM,
    _MITO_RADIUS_NM,
    _MITO_VOLUME_FRACTION,
    _VESICLES_PER_UM3,
)
from incasem.phantom.scene import _Material, _Piece, _Scene
from incasem.phantom.shapes import (
    _cap_points,
    _cap_stack,
    _capsule,
    _crista_coordinate,
    _Cristae,
    _grow,
    _sphere,
    _walk,
)


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
        nodes = _mito_axis(rng, scene, start, r0, length)
        radii = r0 * np.clip(1 + 0.08 * rng.standard_normal(len(nodes)), 0.85, 1.15)
        cristae = _draw_cristae(rng, warp, r0, length)
        pieces = _mito_pieces(scene, nodes, radii, cristae)
        if not pieces or scene.first_collision(pieces) is not None:
            continue
        placed_um3 += scene.commit(
            pieces, _Material(_MITO, _I_MATRIX, _MEMBRANE_NM, _MITO_IMS_NM, False)
        )
        placed += 1


def _mito_axis(
    rng: np.random.Generator, scene: _Scene, start: np.ndarray, r0: float, length: float
) -> np.ndarray:
    """The nodes (nm) of a mitochondrion's axis: walks both ways from ``start`` in segments of
    at most 250 nm, stopped before they come near a placed structure."""
    n_seg = max(1, int(np.ceil(length / 250.0)))
    heading = _unit(rng.standard_normal(3))
    clearance = 1.15 * r0 + _GAP_NM
    ahead = _grow(rng, scene, start, heading, n_seg - n_seg // 2, length / n_seg, clearance)
    behind = _grow(rng, scene, start, -heading, n_seg // 2, length / n_seg, clearance)
    nodes = np.concatenate([behind[::-1], ahead[1:]]) if len(ahead) > 1 else behind[::-1]
    if len(nodes) == 1:
        nodes = np.stack([start - 0.5 * heading, start + 0.5 * heading])
    return nodes


def _draw_cristae(rng: np.random.Generator, warp: np.ndarray, r0: float, length: float) -> _Cristae:
    """The cristae of a mitochondrion of radius ``r0`` and axis ``length`` (nm): lamellae every
    45-80 nm, each across part of the diameter, and 2-5 longitudinal ones."""
    spacing = rng.uniform(45.0, 80.0)
    n_cristae = int((length + 2 * _CRISTA_WARP_NM + 2.4 * r0) / spacing) + 3
    return _Cristae(
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


def _mito_pieces(
    scene: _Scene, nodes: np.ndarray, radii: np.ndarray, cristae: _Cristae
) -> list[_Piece]:
    """One capsule per segment of the axis, with its crista coordinate."""
    pieces: list[_Piece] = []
    s_start = 0.0
    for i in range(len(nodes) - 1):
        cap = _capsule(scene, nodes[i], nodes[i + 1], radii[i], radii[i + 1])
        seg = nodes[i + 1] - nodes[i]
        if cap is not None:
            sl, d, t, radial = cap
            r_loc = np.float32(radii[i]) + np.clip(t, 0, 1) * np.float32(radii[i + 1] - radii[i])
            crista = _crista_coordinate(scene, cristae, sl, t, radial, s_start, seg, r_loc)
            pieces.append((sl, d, crista))
        s_start += float(np.linalg.norm(seg))
    return pieces


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
