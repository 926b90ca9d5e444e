"""The U-Net size arithmetic, against the verified funlib/incasem test vectors."""

import subprocess
import sys
from pathlib import Path

import pytest

from incasem.torch.models import shapes

TWO_LEVELS = ((2, 2, 2),) * 2
ANISOTROPIC = ((1, 2, 2), (1, 2, 2), (2, 2, 2))


@pytest.mark.parametrize(("size", "expected"), [(196, 102), (204, 110), (212, 118)])
def test_incasem_default_sizes(size: int, expected: int) -> None:
    assert shapes.output_shape((size, 204, 100)) == (expected, 110, 6)


def test_bare_unet_sizes() -> None:
    assert shapes.output_shape((196, 204, 212), head_kernel_size=1) == (104, 112, 120)
    assert shapes.output_shape((100, 80, 48), TWO_LEVELS, head_kernel_size=1) == (60, 40, 8)


def test_valid_sizes_are_4_mod_8_from_100_and_lose_94() -> None:
    sizes = shapes.valid_input_sizes(0, 400)
    assert sizes == list(range(100, 400, 8))
    for size in sizes:
        assert shapes.output_shape((size,) * 3) == (size - 94,) * 3
    assert shapes.context() == (47, 47, 47)


def test_valid_sizes_per_axis() -> None:
    assert shapes.valid_input_sizes(30, 45, "z", ANISOTROPIC) == [36, 38, 40, 42, 44]
    assert shapes.valid_input_sizes(30, 45, 0, ANISOTROPIC) == [36, 38, 40, 42, 44]
    assert shapes.valid_input_sizes(90, 120, "x", ANISOTROPIC) == [100, 108, 116]
    with pytest.raises(ValueError, match="axis must be one of"):
        shapes.valid_input_sizes(0, 10, "t")


def test_anisotropic_factors() -> None:
    assert shapes.output_shape((36, 100, 108), ANISOTROPIC) == (2, 6, 14)
    assert shapes.output_shape((38, 204, 100), ANISOTROPIC) == (4, 110, 6)
    assert shapes.context(ANISOTROPIC) == (17, 47, 47)


def test_invalid_size_names_nearest_valid_sizes() -> None:
    with pytest.raises(ValueError) as raised:
        shapes.output_shape((205, 204, 204))
    assert str(raised.value) == (
        "input size 205 along z is not valid for this U-Net: valid sizes near it are 204 and 212 "
        "(≡ 4 mod 8, at least 100)"
    )


def test_too_small_size_names_smallest_valid_size() -> None:
    with pytest.raises(
        ValueError, match="input size 92 along x is too small .* smallest valid size is 100"
    ):
        shapes.output_shape((204, 204, 92))


def test_factor_three_rejects_funlib_test_vector() -> None:
    with pytest.raises(ValueError, match="input size 80 along y is not valid .* 76 and 82"):
        shapes.output_shape((100, 80, 48), [[2, 3, 2], [2, 2, 2]], head_kernel_size=1)


def test_input_shape_for_output() -> None:
    assert shapes.input_shape_for_output((110, 1, 111)) == (204, 100, 212)
    assert shapes.input_shape_for_output((2, 1, 110), ANISOTROPIC) == (36, 100, 204)


def test_context_refuses_off_centre_output() -> None:
    with pytest.raises(ValueError, match="not centred along z"):
        shapes.context(((3, 3, 3),) * 3)


@pytest.mark.parametrize(
    ("factors", "head", "message"),
    [
        ([[2, 2]], 3, "triples of positive integers"),
        ([[2, 0, 2]], 3, "triples of positive integers"),
        ([[2.0, 2, 2]], 3, "triples of positive integers"),
        (TWO_LEVELS, 2, "positive odd integer"),
    ],
)
def test_bad_arguments(factors: list, head: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shapes.output_shape((204, 204, 204), factors, head)


def test_importable_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; "
        "from incasem.torch.models import output_shape; print(output_shape((204, 204, 204)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert result.stdout.strip() == "(110, 110, 110)"
