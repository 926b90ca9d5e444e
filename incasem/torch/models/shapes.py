"""Input and output sizes of the valid-padding U-Net, computed without torch.

A valid U-Net accepts only some input sizes: every max-pool needs a size divisible by its factor,
and the crops that keep the network translation-equivariant need room. Training requests, daisy
block sizes and config validation all have to be planned in those sizes before any tensor exists
(and on machines without torch), so the arithmetic lives here and the model checks its input with
it, turning a deep "cannot downsample" error into one that names the nearest valid sizes.

Per axis the valid input sizes form one residue class above a minimum, ``s = s_min + k * P`` with
``P`` the product of that axis's downsampling factors, and the output is ``s`` minus a constant.
For the incasem default (three levels of 2x2x2, 3x3x3 head) that is ``s ≡ 4 (mod 8)``,
``s >= 100`` and ``s -> s - 94``: 204 -> 110, with 47 voxels of context per side.

Sizes are in voxels and shapes are ordered (z, y, x) throughout.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

AXIS_NAMES = ("z", "y", "x")

DEFAULT_DOWNSAMPLE_FACTORS: tuple[tuple[int, int, int], ...] = ((2, 2, 2),) * 3

CONV_PASS_CROP = 4
"""Voxels one conv pass (two valid 3x3x3 convolutions) removes along each axis."""

Factors = Sequence[Sequence[int]]


@dataclass(frozen=True)
class _AxisLattice:
    """The valid sizes along one axis: ``smallest + k * period``, each shrunk by ``shrink``."""

    smallest: int
    period: int
    shrink: int
    context_before: Fraction

    def is_valid(self, size: int) -> bool:
        return size >= self.smallest and (size - self.smallest) % self.period == 0


def _trace_axis(size: int, factors: tuple[int, ...], head_crop: int) -> tuple[int, Fraction] | None:
    """Follow one axis through the network.

    Returns the output size and the position of the first output voxel's centre in input voxel
    coordinates, or None if the network cannot process ``size``.
    """
    offset, stride = Fraction(0), Fraction(1)
    for factor in factors:
        size -= CONV_PASS_CROP
        offset += CONV_PASS_CROP // 2 * stride
        if size < 1 or size % factor:
            return None
        size //= factor
        offset += Fraction(factor - 1, 2) * stride
        stride *= factor
    size -= CONV_PASS_CROP
    offset += CONV_PASS_CROP // 2 * stride
    if size < 1:
        return None
    for level in reversed(range(len(factors))):
        factor = factors[level]
        size *= factor
        stride /= factor
        offset -= Fraction(factor - 1, 2) * stride
        crop_factor = math.prod(factors[level:])
        multiples = (size - CONV_PASS_CROP) // crop_factor
        if multiples < 1:
            return None
        cropped = multiples * crop_factor + CONV_PASS_CROP
        offset += (size - cropped) // 2 * stride
        # No check on the skip connection is needed: the levels below removed voxels, so it is
        # always larger than the upsampled map and can be centre-cropped to it.
        size = cropped - CONV_PASS_CROP
        offset += CONV_PASS_CROP // 2 * stride
    size -= head_crop
    offset += Fraction(head_crop, 2)
    if size < 1:
        return None
    return size, offset


@functools.cache
def _axis_lattice(factors: tuple[int, ...], head_crop: int) -> _AxisLattice:
    # Every constraint is a divisibility condition (fixing s mod P) or a lower bound, and s + P
    # grows every map by exactly its own downsampling product, so the first valid size found by
    # counting up determines all of them.
    smallest = 1
    while (traced := _trace_axis(smallest, factors, head_crop)) is None:
        smallest += 1
    output, context_before = traced
    return _AxisLattice(smallest, math.prod(factors), smallest - output, context_before)


def normalise_downsample_factors(downsample_factors: Factors) -> tuple[tuple[int, ...], ...]:
    """Validate per-level downsampling factors and return them as (z, y, x) tuples of ints.

    Accepts any nesting of sequences of integers (e.g. lists from YAML or JSON).

    Raises:
        ValueError: If a level is not a (z, y, x) triple of positive integers.
    """
    factors = []
    for level in downsample_factors:
        try:
            triple = tuple(operator.index(f) for f in level)
        except TypeError:
            triple = ()
        if len(triple) != len(AXIS_NAMES) or min(triple) < 1:
            raise ValueError(
                f"downsample factors must be (z, y, x) triples of positive integers, got {level!r}"
            )
        factors.append(triple)
    return tuple(factors)


def total_downsampling(downsample_factors: Factors) -> tuple[int, int, int]:
    """The product of the per-level factors along each axis (z, y, x): the grid, in voxels, on
    which outputs tile seamlessly and by which valid sizes step (8 for three levels of 2)."""
    factors = normalise_downsample_factors(downsample_factors)
    z, y, x = (math.prod(level[axis] for level in factors) for axis in range(len(AXIS_NAMES)))
    return z, y, x


def _lattices(downsample_factors: Factors, head_kernel_size: int) -> list[_AxisLattice]:
    factors = normalise_downsample_factors(downsample_factors)
    if head_kernel_size < 1 or head_kernel_size % 2 == 0:
        raise ValueError(f"head kernel size must be a positive odd integer, got {head_kernel_size}")
    return [
        _axis_lattice(tuple(level[axis] for level in factors), head_kernel_size - 1)
        for axis in range(len(AXIS_NAMES))
    ]


def _axis_index(axis: int | str) -> int:
    if axis in AXIS_NAMES:
        return AXIS_NAMES.index(axis)
    if isinstance(axis, int) and 0 <= axis < len(AXIS_NAMES):
        return axis
    raise ValueError(f"axis must be one of {AXIS_NAMES} or an index 0-2, got {axis!r}")


def _invalid_size_message(size: int, axis: int, lattice: _AxisLattice) -> str:
    prefix = f"input size {size} along {AXIS_NAMES[axis]}"
    rule = (
        f"≡ {lattice.smallest % lattice.period} mod {lattice.period}, at least {lattice.smallest}"
        if lattice.period > 1
        else f"at least {lattice.smallest}"
    )
    if size < lattice.smallest:
        return (
            f"{prefix} is too small for this U-Net: the smallest valid size is "
            f"{lattice.smallest} (valid sizes are {rule})"
        )
    below = size - (size - lattice.smallest) % lattice.period
    return (
        f"{prefix} is not valid for this U-Net: valid sizes near it are {below} and "
        f"{below + lattice.period} ({rule})"
    )


def output_shape(
    input_shape: Sequence[int],
    downsample_factors: Factors = DEFAULT_DOWNSAMPLE_FACTORS,
    head_kernel_size: int = 3,
) -> tuple[int, int, int]:
    """Spatial output shape of the U-Net for a spatial input shape.

    Args:
        input_shape: Input size in voxels, (z, y, x).
        downsample_factors: Per-level max-pool factors, each a (z, y, x) triple.
        head_kernel_size: Edge length in voxels of the valid convolution after the U-Net
            (3 for the incasem model, 1 for a 1x1x1 head or the bare U-Net).

    Returns:
        Output size in voxels, (z, y, x).

    Raises:
        ValueError: If the network cannot process ``input_shape``; the message names the nearest
            valid sizes along the first offending axis.
    """
    lattices = _lattices(downsample_factors, head_kernel_size)
    if len(input_shape) != len(AXIS_NAMES):
        raise ValueError(f"input shape must be (z, y, x), got {tuple(input_shape)}")
    for axis, (size, lattice) in enumerate(zip(input_shape, lattices, strict=True)):
        if not lattice.is_valid(size):
            raise ValueError(_invalid_size_message(size, axis, lattice))
    z, y, x = (size - lattice.shrink for size, lattice in zip(input_shape, lattices, strict=True))
    return z, y, x


def context(
    downsample_factors: Factors = DEFAULT_DOWNSAMPLE_FACTORS,
    head_kernel_size: int = 3,
) -> tuple[int, int, int]:
    """Voxels of input the U-Net needs on each side of its output, (z, y, x).

    A block-wise prediction reads its write ROI grown by this amount on both sides; for the
    incasem default this is 47 voxels along every axis.

    Raises:
        ValueError: If the output is not centred in the input (odd per-level factors such as 3 or
            5 crop unevenly), so no symmetric context exists.
    """
    per_axis = []
    for axis, lattice in enumerate(_lattices(downsample_factors, head_kernel_size)):
        if lattice.context_before * 2 != lattice.shrink:
            raise ValueError(
                f"the U-Net output is not centred along {AXIS_NAMES[axis]} for downsample "
                f"factors {[list(level) for level in downsample_factors]}: "
                f"{lattice.context_before} voxels of context before it, "
                f"{lattice.shrink - lattice.context_before} after"
            )
        per_axis.append(lattice.shrink // 2)
    z, y, x = per_axis
    return z, y, x


def valid_input_sizes(
    start: int,
    stop: int,
    axis: int | str = "z",
    downsample_factors: Factors = DEFAULT_DOWNSAMPLE_FACTORS,
    head_kernel_size: int = 3,
) -> list[int]:
    """Valid input sizes in voxels along one axis, from ``start`` (inclusive) to ``stop``.

    Args:
        start: Smallest size to consider, in voxels.
        stop: End of the range (exclusive), in voxels.
        axis: ``"z"``, ``"y"`` or ``"x"``, or the index 0, 1 or 2.
        downsample_factors: Per-level max-pool factors, each a (z, y, x) triple.
        head_kernel_size: Edge length of the final valid convolution, in voxels.
    """
    lattice = _lattices(downsample_factors, head_kernel_size)[_axis_index(axis)]
    return [size for size in range(max(start, 1), stop) if lattice.is_valid(size)]


def input_shape_for_output(
    min_output_shape: Sequence[int],
    downsample_factors: Factors = DEFAULT_DOWNSAMPLE_FACTORS,
    head_kernel_size: int = 3,
) -> tuple[int, int, int]:
    """Smallest valid input shape whose output covers ``min_output_shape``.

    Args:
        min_output_shape: Wanted output size in voxels, (z, y, x).
        downsample_factors: Per-level max-pool factors, each a (z, y, x) triple.
        head_kernel_size: Edge length of the final valid convolution, in voxels.

    Returns:
        Input size in voxels, (z, y, x); e.g. 204 for an output of 110 with the defaults.
    """
    lattices = _lattices(downsample_factors, head_kernel_size)
    if len(min_output_shape) != len(AXIS_NAMES):
        raise ValueError(f"output shape must be (z, y, x), got {tuple(min_output_shape)}")
    sizes = []
    for wanted, lattice in zip(min_output_shape, lattices, strict=True):
        steps = max(0, -(-(wanted + lattice.shrink - lattice.smallest) // lattice.period))
        sizes.append(lattice.smallest + steps * lattice.period)
    z, y, x = sizes
    return z, y, x
