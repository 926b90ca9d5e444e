"""The physical parameters of the synthetic cell: geometry (nm), framing, densities (per µm³ of
cytoplasm, per µm² of surface), noise-free intensities (0 black .. 1 white) and imaging.
"""

from __future__ import annotations

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
