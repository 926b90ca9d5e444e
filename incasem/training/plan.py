"""Planning a network from the voxel size and the annotated ROIs: ``incasem plan`` and
``model.downsample_factors: auto``.

The ASEM network (three 2×2×2 levels, 204³ → 110³ voxels) was made for 5 nm isotropic FIB-SEM.
On serial-section data (40 × 6 × 6 nm) its first max-pool merges two 40 nm sections into one
80 nm "voxel" while the in-plane voxels are still 12 nm, and its 110-section output is 4.4 µm deep,
deeper than most annotated blocks. Both follow from the voxel size, so we plan them from it:

* **Downsampling per axis.** At each level an axis is halved only while its voxel size is at
  most twice the finest one at that level (nnU-Net's rule), so the coarse levels become nearly
  isotropic: 40 × 6 × 6 nm gives [1, 2, 2], [1, 2, 2], [2, 2, 2] (40 × 24 × 24 nm before the
  last level); 5 nm isotropic gives ASEM's three [2, 2, 2].
* **Output size per axis.** About the ASEM output's extent in the cell (110 voxels × 5 nm =
  550 nm) along every axis, but never more than the smallest annotated ROI holds along that
  axis (training needs whole outputs of known labels), rounded down to a valid size.
* **Memory.** A training step of the default 32-feature-map network needs about three forward
  passes' memory (`incasem.predict.block_size.forward_bytes`); the output shrinks until that
  fits the budget.

Sizes are voxels and voxel sizes nm, (z, y, x) throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from incasem.errors import IncasemError
from incasem.predict.block_size import forward_bytes
from incasem.torch.models import shapes

#: The ASEM network's output extent in the cell: 110 voxels at 5 nm.
TARGET_OUTPUT_NM = 550

#: Training holds activations and gradients: about this many forward passes' memory.
TRAINING_MEMORY_FACTOR = 3

#: The head of incasem's U-Net (a valid 3×3×3 convolution).
HEAD_KERNEL_SIZE = 3


@dataclass(frozen=True)
class NetworkPlan:
    """A network's downsampling and sizes for data of one voxel size.

    Attributes:
        voxel_size: nm (z, y, x).
        downsample_factors: per level, (z, y, x).
        input_size_voxels: training input (z, y, x).
        output_size_voxels: training output (z, y, x).
        context_voxels: input voxels on each side of the output (z, y, x).
        smallest_roi_voxels: the smallest annotated ROI's extent along each axis (z, y, x).
    """

    voxel_size: list[int]
    downsample_factors: list[list[int]]
    input_size_voxels: list[int]
    output_size_voxels: list[int]
    context_voxels: list[int]
    smallest_roi_voxels: list[int]

    @property
    def context_nm(self) -> list[int]:
        """Context on each side of the output in nm (z, y, x)."""
        return [c * v for c, v in zip(self.context_voxels, self.voxel_size, strict=True)]

    def config_updates(self) -> dict[str, list]:
        """The training config keys this plan sets (dotted)."""
        return {
            "model.downsample_factors": self.downsample_factors,
            "training.input_size_voxels": self.input_size_voxels,
            "training.output_size_voxels": self.output_size_voxels,
        }

    def config_arguments(self) -> str:
        """`config_updates` as ``key=value`` words for ``scripts/train.py ... with``."""
        return " ".join(f"{k}={str(v).replace(' ', '')}" for k, v in self.config_updates().items())

    def describe(self) -> str:
        """Lines for the terminal: factors, sizes, context in voxels and nm, and the keys."""
        nm = [s * v for s, v in zip(self.output_size_voxels, self.voxel_size, strict=True)]
        return "\n".join(
            [
                f"voxel size:          {self.voxel_size} nm (z, y, x)",
                f"downsample factors:  {self.downsample_factors}",
                f"training input:      {self.input_size_voxels} voxels",
                f"training output:     {self.output_size_voxels} voxels = {nm} nm",
                f"context per side:    {self.context_voxels} voxels = {self.context_nm} nm",
                f"smallest ROI:        {self.smallest_roi_voxels} voxels",
                f"config:              {self.config_arguments()}",
            ]
        )


def plan_downsample_factors(voxel_size: Sequence[int], levels: int = 3) -> list[list[int]]:
    """Per-level max-pool factors (z, y, x): 2 along an axis whose voxel size (after the levels
    before) is at most twice the finest, else 1."""
    current = [float(v) for v in voxel_size]
    factors = []
    for _ in range(levels):
        finest = min(current)
        level = [2 if v <= 2 * finest else 1 for v in current]
        current = [v * f for v, f in zip(current, level, strict=True)]
        factors.append(level)
    return factors


def _largest_valid_output(limit: int, axis: int, factors: shapes.Factors) -> int | None:
    """The largest output (voxels) along ``axis`` of a valid input, at most ``limit``; None if
    even the smallest valid input's output is longer."""
    smallest_input = shapes.input_shape_for_output([1, 1, 1], factors, HEAD_KERNEL_SIZE)
    smallest_output = shapes.output_shape(smallest_input, factors, HEAD_KERNEL_SIZE)[axis]
    period = shapes.total_downsampling(factors)[axis]
    if limit < smallest_output:
        return None
    return smallest_output + (limit - smallest_output) // period * period


def plan_network(
    voxel_size: Sequence[int],
    roi_shapes: Sequence[Sequence[int]],
    num_fmaps: int = 32,
    memory_bytes: int | None = None,
    levels: int = 3,
    downsample_factors: Sequence[Sequence[int]] | None = None,
) -> NetworkPlan:
    """Plan downsampling and training sizes for data of ``voxel_size`` nm whose annotated ROIs
    have ``roi_shapes`` (voxels, z y x); ``downsample_factors`` given, only the sizes.

    Raises `IncasemError` when an annotated ROI is too thin for any valid output along an axis.
    """
    factors = (
        [list(level) for level in downsample_factors]
        if downsample_factors is not None
        else plan_downsample_factors(voxel_size, levels)
    )
    smallest = [min(int(shape[axis]) for shape in roi_shapes) for axis in range(3)]
    output = []
    for axis, (v, extent) in enumerate(zip(voxel_size, smallest, strict=True)):
        wanted = min(extent, max(1, round(TARGET_OUTPUT_NM / v)))
        size = _largest_valid_output(wanted, axis, factors)
        if size is None:
            raise IncasemError(
                f"the smallest annotated ROI is {smallest} voxels; along "
                f"{shapes.AXIS_NAMES[axis]} it holds {extent}, less than the smallest output "
                f"of a network with downsample factors {factors}: annotate thicker blocks"
            )
        output.append(size)
    while memory_bytes is not None:
        input_size = shapes.input_shape_for_output(output, factors, HEAD_KERNEL_SIZE)
        if TRAINING_MEMORY_FACTOR * forward_bytes(input_size, num_fmaps) <= memory_bytes:
            break
        axis = max(range(3), key=lambda a: output[a] * voxel_size[a])
        smaller = _largest_valid_output(output[axis] - 1, axis, factors)
        if smaller is None:
            raise IncasemError(
                f"not even the smallest training block fits {memory_bytes / 2**30:.1f} GiB"
            )
        output[axis] = smaller
    input_size = list(shapes.input_shape_for_output(output, factors, HEAD_KERNEL_SIZE))
    return NetworkPlan(
        voxel_size=[int(v) for v in voxel_size],
        downsample_factors=factors,
        input_size_voxels=input_size,
        output_size_voxels=list(shapes.output_shape(input_size, factors, HEAD_KERNEL_SIZE)),
        context_voxels=list(shapes.context(factors, HEAD_KERNEL_SIZE)),
        smallest_roi_voxels=smallest,
    )


def unreachable_valid_fraction(
    output_size: Sequence[int], roi_shapes: dict[str, Sequence[int]], min_valid: float
) -> str | None:
    """A message when no entry's ROI can hold ``min_valid`` of an output block (so training
    would sample in vain), else None. ``roi_shapes`` maps entry names to ROI shapes (voxels)."""
    best = 0.0
    for shape in roi_shapes.values():
        fraction = math.prod(min(1.0, s / o) for s, o in zip(shape, output_size, strict=True))
        best = max(best, fraction)
    if best >= min_valid:
        return None
    name, shape = min(roi_shapes.items(), key=lambda item: math.prod(item[1]))
    return (
        f"training.output_size_voxels {list(output_size)} is larger than the annotated ROIs "
        f"allow: at most {100 * best:.0f} % of an output block lies inside one (e.g. {name}, "
        f"{' x '.join(str(s) for s in shape)} voxels), and training.reject.min_valid asks "
        f"for {100 * min_valid:.0f} %"
    )


#: Training config keys that may say ``auto`` (planned from the training data).
AUTO_KEYS = (
    "model.downsample_factors",
    "training.input_size_voxels",
    "training.output_size_voxels",
)


def _get(config: dict[str, Any], key: str) -> Any:
    section, name = key.split(".")
    return (config.get(section) or {}).get(name)


def plan_for_config(config: dict[str, Any], memory_bytes: int | None = None) -> NetworkPlan:
    """The plan for a training config dict: its training data config's voxel size and ROIs
    (``training.data``; paths relative to the working directory, as in training), its
    ``model.num_fmaps``, and its ``model.downsample_factors`` unless they say ``auto``."""
    from incasem.io.data_config import load_data_config

    paths = _get(config, "training.data")
    if not paths:
        raise IncasemError("training.data is not set: give a data config JSON")
    data = load_data_config(paths)
    voxel_sizes = {tuple(entry.voxel_size) for entry in data}
    if len(voxel_sizes) != 1:
        raise IncasemError(
            f"training.data {paths}: entries of several voxel sizes {sorted(voxel_sizes)}"
        )
    (voxel_size,) = voxel_sizes
    factors = _get(config, "model.downsample_factors")
    return plan_network(
        list(voxel_size),
        [entry.shape for entry in data],
        num_fmaps=int(_get(config, "model.num_fmaps") or 32),
        memory_bytes=memory_bytes,
        downsample_factors=None if factors in (None, "auto") else factors,
    )


def resolve_auto(
    config: dict[str, Any], memory_bytes: int | None = None
) -> tuple[dict[str, Any], NetworkPlan | None]:
    """The values of the ``auto`` keys among `AUTO_KEYS` (dotted keys) and the plan they come
    from; empty and None when no key says ``auto``."""
    auto = [key for key in AUTO_KEYS if _get(config, key) == "auto"]
    if not auto:
        return {}, None
    plan = plan_for_config(config, memory_bytes)
    updates = plan.config_updates()
    return {key: updates[key] for key in auto}, plan
