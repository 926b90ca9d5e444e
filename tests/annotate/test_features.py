"""ilastik-style filter features: channels, exact blockwise computation, flat and ramp images."""

import numpy as np
import pytest
from scipy import ndimage

from incasem.annotate.features import (
    DEFAULT_SIGMAS,
    FEATURE_KINDS,
    block_features,
    feature_margin,
    feature_names,
    filter_features,
    gaussian_kernel,
    symmetric_eigenvalues,
)

SIGMAS = (1.0, 2.0)  # small kernels keep the tests fast; margin 8 + 4 = 12 voxels


def _volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random(shape)
    return (ndimage.gaussian_filter(noise, 1.5) * 255).astype(np.uint8)


def test_shape_dtype_and_names():
    raw = _volume((10, 12, 14))
    features = filter_features(raw)
    names = feature_names()
    assert features.shape == (len(FEATURE_KINDS) * len(DEFAULT_SIGMAS), 10, 12, 14)
    assert features.shape[0] == 45
    assert features.dtype == np.float32
    assert len(names) == len(set(names)) == 45
    assert names[0] == "gaussian_s0.7" and names[-1] == "structure_tensor_eigenvalue_2_s5"
    # uint8 is scaled to [0, 1]: the smoothed image stays in that range
    assert 0 <= features[0].min() and features[0].max() <= 1
    # Eigenvalues come largest first
    hessian = features[3:6]
    assert np.all(hessian[0] >= hessian[1] - 1e-6) and np.all(hessian[1] >= hessian[2] - 1e-6)


def test_margin():
    # Structure tensor: gradient kernel int(4 s + 0.5) plus outer smoothing int(4 s / 2 + 0.5)
    assert feature_margin((1.0,)) == 4 + 2
    assert feature_margin(DEFAULT_SIGMAS) == 20 + 10
    assert feature_margin(SIGMAS) == 12
    with pytest.raises(ValueError):
        feature_margin(())
    with pytest.raises(ValueError):
        filter_features(np.zeros((4, 4)), SIGMAS)


@pytest.mark.parametrize(
    "start, shape",
    [
        ((14, 15, 13), (6, 5, 7)),  # full margin inside the volume
        ((0, 30, 0), (5, 10, 9)),  # margin clipped at the volume's edges
    ],
)
def test_block_with_margin_equals_whole_volume(start, shape):
    raw = _volume((34, 40, 38))
    whole = filter_features(raw, SIGMAS)
    block = tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))
    features = block_features(raw, start, shape, SIGMAS)
    assert features.shape == (len(feature_names(SIGMAS)), *shape)
    np.testing.assert_allclose(features, whole[(slice(None), *block)], rtol=1e-4, atol=1e-5)
    # Without the margin the features differ: the margin is needed.
    alone = filter_features(raw[block], SIGMAS)
    assert not np.allclose(alone, whole[(slice(None), *block)], rtol=1e-4, atol=1e-5)


def test_features_at_points():
    raw = _volume((20, 22, 24))
    points = (np.array([0, 5, 19]), np.array([3, 21, 10]), np.array([23, 0, 12]))
    at_points = filter_features(raw, SIGMAS, interior=points)
    whole = filter_features(raw, SIGMAS)
    np.testing.assert_allclose(at_points, whole[(slice(None), *points)], rtol=1e-5, atol=1e-6)


def test_constant_volume_has_no_structure():
    features = filter_features(np.full((12, 13, 14), 77, np.uint8), SIGMAS)
    kinds = np.tile(np.array(FEATURE_KINDS), len(SIGMAS))
    np.testing.assert_allclose(features[kinds == "gaussian"], 77 / 255, rtol=1e-6)
    np.testing.assert_allclose(features[kinds != "gaussian"], 0, atol=1e-6)


def test_ramp_and_parabola_are_exact():
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in (24, 24, 24)), indexing="ij")
    inner = (slice(8, -8),) * 3  # away from the reflecting edges
    kinds = list(FEATURE_KINDS)
    ramp = filter_features(0.3 * z - 0.4 * x, (1.0,))
    np.testing.assert_allclose(ramp[kinds.index("gradient_magnitude")][inner], 0.5, rtol=1e-5)
    np.testing.assert_allclose(ramp[kinds.index("laplacian")][inner], 0, atol=1e-5)
    # Structure tensor of a uniform gradient g: eigenvalues |g|^2, 0, 0
    np.testing.assert_allclose(
        ramp[kinds.index("structure_tensor_eigenvalue_0")][inner], 0.25, rtol=1e-5
    )
    parabola = filter_features(0.5 * (2.0 * y**2 - 1.0 * x**2), (0.7,))
    hessian = parabola[[kinds.index(f"hessian_eigenvalue_{i}") for i in range(3)]]
    for eigenvalue, expected in zip(hessian, [2.0, 0.0, -1.0], strict=True):
        np.testing.assert_allclose(eigenvalue[inner], expected, atol=1e-3)
    np.testing.assert_allclose(parabola[kinds.index("laplacian")][inner], 1.0, atol=1e-3)


def test_kernels_are_normalised():
    x = np.arange(-8, 9)
    for sigma in (0.7, 2.0):
        k0, k1, k2 = (gaussian_kernel(sigma, order) for order in range(3))
        r = len(k0) // 2
        assert k0.sum() == pytest.approx(1)
        assert (k1 * x[8 - r : 9 + r]).sum() == pytest.approx(1)
        assert k2.sum() == pytest.approx(0, abs=1e-12)
        assert (k2 * x[8 - r : 9 + r] ** 2 / 2).sum() == pytest.approx(1)


def test_symmetric_eigenvalues_match_numpy():
    rng = np.random.default_rng(1)
    elements = [rng.standard_normal((4, 5, 6)) for _ in range(6)]
    matrices = np.zeros((4, 5, 6, 3, 3))
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for (i, j), element in zip(pairs, elements, strict=True):
        matrices[..., i, j] = matrices[..., j, i] = element
    expected = np.moveaxis(np.linalg.eigvalsh(matrices)[..., ::-1], -1, 0)
    np.testing.assert_allclose(symmetric_eigenvalues(elements), expected, atol=1e-5)
    # Degenerate: a multiple of the identity
    ones = np.ones((2, 2, 2))
    identity = [3 * ones, 0 * ones, 0 * ones, 3 * ones, 0 * ones, 3 * ones]
    np.testing.assert_allclose(symmetric_eigenvalues(identity), 3.0, rtol=1e-6)
