"""The noise-free picture and the labels: nucleus with chromatin, envelope and pores, resin and
plasma membrane, and the membranes, lumens and cristae of every placed organelle.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from incasem.phantom.fields import _footprint, _gaussian_kernel, _smooth_noise
from incasem.phantom.labels import _ER, _GOLGI, _MITO, _VESICLE, ORGANELLES
from incasem.phantom.parameters import (
    _BLOTCH_STD,
    _BOUND_RIBOSOMES_PER_UM2,
    _CYTOPLASM_VARIATION,
    _I_CRISTA_LUMEN,
    _I_CRISTA_MEMBRANE,
    _I_CYTOPLASM,
    _I_HETEROCHROMATIN,
    _I_MEMBRANE,
    _I_MITO_IMS,
    _I_NUCLEOPLASM,
    _I_PERINUCLEAR,
    _I_PORE,
    _I_PORE_FILAMENTS,
    _I_RESIN,
    _NE_LUMEN_NM,
    _NE_MEMBRANE_NM,
    _PM_NM,
    _PORE_EXTENSION_NM,
    _RIBOSOME_DARKNESS,
    _RIBOSOME_SIGMA_NM,
    _RIBOSOMES_PER_UM3,
    _TEXTURE_STD,
)
from incasem.phantom.pores import _Pore, _pore_frame
from incasem.phantom.scene import _Scene


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


#: Thickness (nm) of the nuclear envelope: two membranes around the perinuclear space.
_ENVELOPE_NM = 2 * _NE_MEMBRANE_NM + _NE_LUMEN_NM


def _render(
    rng: np.random.Generator, scene: _Scene, dp: np.ndarray, dn: np.ndarray, pores: list[_Pore]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noise-free image (float32, 0 black .. 1 white) and uint8 labels."""
    tex = _texture(rng, scene, dn)
    image = _cytoplasm(rng, scene, tex)
    labels = {name: np.zeros(scene.shape, np.uint8) for name in ORGANELLES}
    _render_nucleus(rng, scene, dn, pores, image, tex, labels)
    _render_envelope(scene, dn, image)
    _render_plasma_membrane(scene, dp, image, labels)
    _render_objects(scene, image.reshape(-1), tex.reshape(-1), labels)
    _render_pores(scene, pores, dn, image, tex, labels, _ENVELOPE_NM)
    return image, labels


def _cytoplasm(rng: np.random.Generator, scene: _Scene, tex: np.ndarray) -> np.ndarray:
    """The cytoplasm everywhere: slow variation, stain blotches at 50 nm and the texture."""
    image = _smooth_noise(rng, scene.shape, scene.vs, 300.0)
    image *= np.float32(_CYTOPLASM_VARIATION)
    blotches = _smooth_noise(rng, scene.shape, scene.vs, 50.0)
    blotches *= np.float32(_BLOTCH_STD)
    image += blotches
    del blotches
    image += np.float32(_I_CYTOPLASM)
    image += tex
    return image


def _render_nucleus(
    rng: np.random.Generator,
    scene: _Scene,
    dn: np.ndarray,
    pores: list[_Pore],
    image: np.ndarray,
    tex: np.ndarray,
    labels: dict[str, np.ndarray],
) -> None:
    """Nucleus, in place: chromatin clumps and a patchy peripheral heterochromatin layer,
    excluded at pores."""
    chromatin = _smooth_noise(rng, scene.shape, scene.vs, 150.0)
    depth = -dn - np.float32(_ENVELOPE_NM)
    periphery = np.clip((np.clip(60.0 + 50.0 * chromatin, 0, None) - depth) / 20.0, 0, 1)
    het = np.maximum(np.clip((chromatin - 0.9) / 0.5, 0, 1), periphery * (depth >= 0))
    del chromatin, periphery, depth
    for pore in pores:
        frame = _pore_frame(scene, pore, dn, 2 * pore.radius + 160.0)
        if frame is None:
            continue
        sl, axial, rho = frame
        near = (axial < 0) & (axial > -_ENVELOPE_NM - 150.0)
        keep = np.clip((rho - 1.5 * pore.radius) / (0.5 * pore.radius), 0, 1)
        het[sl] *= np.where(near, keep, 1).astype(np.float32)
    nuc = np.flatnonzero(dn < 0)
    image.reshape(-1)[nuc] = (
        _I_NUCLEOPLASM
        + (_I_HETEROCHROMATIN - _I_NUCLEOPLASM) * het.reshape(-1)[nuc]
        + tex.reshape(-1)[nuc]
    )
    labels["nucleus"].reshape(-1)[nuc] = 1


def _render_envelope(scene: _Scene, dn: np.ndarray, image: np.ndarray) -> None:
    """The nuclear envelope's two membranes around the perinuclear space, in place."""
    vs, flat_img = scene.vs, image.reshape(-1)
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


def _render_plasma_membrane(
    scene: _Scene, dp: np.ndarray, image: np.ndarray, labels: dict[str, np.ndarray]
) -> None:
    """Extracellular resin and the plasma membrane, in place."""
    vs, flat_img = scene.vs, image.reshape(-1)
    image[dp > 0] = np.float32(_I_RESIN)
    t_pm = np.float32(_PM_NM / 2)
    band = np.flatnonzero((dp <= 0) & (dp >= -2 * max(float(t_pm), 0.5 * float(vs.sum()))))
    half = np.maximum(t_pm, _footprint(dp, band, vs))
    on = dp.reshape(-1)[band] >= -2 * half
    bg = (flat_img[band] + np.float32(_I_RESIN)) / 2
    flat_img[band[on]] = (bg + (_I_MEMBRANE - bg) * (t_pm / half))[on]
    labels["plasma_membrane"].reshape(-1)[band[on]] = 1


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
