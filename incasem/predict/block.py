"""Predict one block: read raw with context, normalise as in training, run the network.

This is the single implementation of "the network's view of one block". Daisy workers, the
in-process validation during training (`incasem.predict.evaluate_entry`) and the tests' single
pass all call it, so what the network sees cannot drift between training, validation and
prediction:

* context is read from the dataset wherever it has data, also outside the ROI being predicted
  (the original cropped raw to the ROI and never predicted its outer 47 voxels);
* beyond the dataset, raw is mirrored (``numpy.pad`` mode ``reflect``), as gunpowder's
  ``Pad(mode="reflect")`` does during training. The mirror is taken about the dataset's borders,
  whatever the block, so two blocks that see the same place outside the data see the same
  values (a per-block pad of a short fetch would differ);
* intensities map like training's ``Normalize`` + ``IntensityScaleShift``: ``x / 255`` then
  ``* 2 - 1``, in float32, in that order (the card's ``normalisation`` gives the ranges).

ROIs are in nm, arrays (channel,) z, y, x.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from incasem.errors import IncasemError
from incasem.io.arrays import read_checked
from incasem.predict.geometry import BlockLayout

if TYPE_CHECKING:
    import torch


def mirror_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices into an axis of length ``size`` for positions ``start..stop-1`` (voxels).

    Positions inside ``[0, size)`` map to themselves; positions outside are mirrored about the
    borders without repeating the border voxel, repeatedly if needed: ``numpy.pad``'s
    ``reflect`` of the whole axis.
    """
    positions = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    folded = np.mod(positions, period)
    return np.where(folded < size, folded, period - folded)


def read_mirrored(array: Array, roi: Roi) -> np.ndarray:
    """Read ``roi`` (nm) of a 3D dataset, mirroring the dataset beyond its borders.

    Reads only the part of the dataset the mirrored ROI needs (the ROI's intersection with the
    data, plus whatever a mirror reaches further in when the ROI sticks out by more than that).
    Returns a (z, y, x) array of the dataset's dtype. Missing or corrupt chunks raise
    `IncasemError` naming the dataset and chunk (`incasem.io.arrays.read_checked`).
    """
    voxel_size = array.voxel_size
    begin = (roi.begin - array.roi.begin) / voxel_size
    shape = roi.shape / voxel_size
    data_shape = array.roi.shape / voxel_size
    indices = [
        mirror_indices(b, b + s, n) for b, s, n in zip(begin, shape, data_shape, strict=True)
    ]
    low = Coordinate(int(i.min()) for i in indices)
    high = Coordinate(int(i.max()) + 1 for i in indices)
    fetched = read_checked(
        array, Roi(array.roi.begin + low * voxel_size, (high - low) * voxel_size)
    )
    local = [axis_indices - axis_low for axis_indices, axis_low in zip(indices, low, strict=True)]
    if all(np.array_equal(axis, np.arange(len(axis))) for axis in local):
        return fetched
    return fetched[np.ix_(*local)]


def normalise(raw: np.ndarray, normalisation: Mapping[str, Any]) -> np.ndarray:
    """Map raw intensities to network input, float32, exactly as the training pipeline does.

    ``normalisation`` is a checkpoint card's: ``{"type": "scale_shift", "input_range": [0, 255],
    "output_range": [-1, 1]}`` means ``x * float32(1/255)`` (gunpowder ``Normalize``) followed by
    ``* 2 + -1`` (``IntensityScaleShift``).
    """
    if normalisation.get("type", "scale_shift") != "scale_shift":
        raise IncasemError(f"unsupported normalisation {dict(normalisation)}")
    in_low, in_high = (float(v) for v in normalisation["input_range"])
    out_low, out_high = (float(v) for v in normalisation["output_range"])
    x = raw.astype(np.float32)
    if in_low != 0:
        x = x - np.float32(in_low)
    x = x * np.float32(1.0 / (in_high - in_low))
    return x * np.float32(out_high - out_low) + np.float32(out_low)


def read_block_input(
    raw: Array, write_roi: Roi, layout: BlockLayout, normalisation: Mapping[str, Any]
) -> np.ndarray:
    """The network input for one block: raw with context, normalised, float32 (z, y, x).

    ``write_roi`` (nm) as in `predict_block`; the input covers ``layout.read_roi_for(write_roi)``.
    """
    read_roi = layout.read_roi_for(write_roi)
    return np.ascontiguousarray(normalise(read_mirrored(raw, read_roi), normalisation))


def flip_axes(voxel_size: Sequence[int]) -> list[tuple[int, ...]]:
    """The flips test-time augmentation averages over, as tuples of flipped axes (0 = z,
    1 = y, 2 = x): all 8 combinations for isotropic voxels, the 4 of y and x when z's voxel
    size (nm) differs (sections are z). The first, ``()``, is no flip."""
    axes = (0, 1, 2) if len(set(voxel_size)) == 1 else (1, 2)
    return [c for n in range(len(axes) + 1) for c in itertools.combinations(axes, n)]


def forward_block(
    model: torch.nn.Module,
    x: np.ndarray | torch.Tensor,
    write_roi: Roi,
    layout: BlockLayout,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    flips: Sequence[tuple[int, ...]] = ((),),
) -> np.ndarray:
    """Class probabilities (softmax) for one block's input, float32 (classes, z, y, x).

    Args:
        model: the network, on ``device``, in eval mode.
        x: `read_block_input`'s array, or the same as a (pinned) CPU tensor.
        write_roi: nm; the probabilities are cut to its shape.
        layout: the block geometry.
        device: where to run the network.
        precision: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` to run the network under
            torch autocast (convolutions in 16 bits, softmax in float32).
        flips: test-time augmentation: the probabilities are the mean over these flips of
            the input (tuples of flipped axes, see `flip_axes`), each flipped back before
            averaging; default ``((),)``, the input as it is.
    """
    import torch

    tensor = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    with torch.inference_mode():
        tensor = tensor[None, None].to(device, non_blocking=True)
        total = None
        for axes in flips:
            flipped = tensor.flip([a + 2 for a in axes]) if axes else tensor
            probabilities = _probabilities(model, flipped, layout, device, precision)
            probabilities = probabilities.flip([a + 1 for a in axes]) if axes else probabilities
            total = probabilities if total is None else total + probabilities
        assert total is not None
        mean = total / len(flips) if len(flips) > 1 else total
        z, y, x_ = write_roi.shape / layout.voxel_size
        return mean[:, :z, :y, :x_].cpu().numpy()


def _probabilities(
    model: torch.nn.Module,
    tensor: torch.Tensor,
    layout: BlockLayout,
    device: str | torch.device,
    precision: str,
) -> torch.Tensor:
    """Softmax (classes, z, y, x) of the network's whole output for a (1, 1, z, y, x) input."""
    import torch

    if precision == "float32":
        logits = model(tensor)
    else:
        with torch.autocast(torch.device(device).type, dtype=getattr(torch, precision)):
            logits = model(tensor)
    expected = (1, *layout.output_shape)
    if logits.shape[0] != 1 or tuple(logits.shape[2:]) != tuple(expected[1:]):
        raise IncasemError(
            f"the network returned {tuple(logits.shape)} for an input of "
            f"{tuple(layout.input_shape)}; expected an output of {tuple(layout.output_shape)}"
        )
    return torch.softmax(logits[0].float(), dim=0)


def predict_block(
    model: torch.nn.Module,
    raw: Array,
    write_roi: Roi,
    layout: BlockLayout,
    normalisation: Mapping[str, Any],
    device: str | torch.device = "cpu",
    precision: str = "float32",
) -> np.ndarray:
    """Class probabilities (softmax) for one block, float32, shape (classes, z, y, x).

    `read_block_input` followed by `forward_block` (a prediction worker runs the two in
    different threads, to overlap reading with the network).

    Args:
        model: the network, already on ``device`` and in eval mode; run under
            ``torch.inference_mode``.
        raw: the raw dataset (3D, with voxel size and offset).
        write_roi: nm; starts on the block grid (the ROI offset plus a multiple of
            ``layout.write_shape``) and is at most ``layout.write_shape`` voxels long. The
            network input is ``layout.read_roi_for(write_roi)``, whatever the write ROI's shape,
            so a block clipped at the ROI's end computes the same voxels as an unclipped one.
        layout: the block geometry.
        normalisation: the checkpoint card's normalisation (see `normalise`).
        device: where to run the network.
        precision: see `forward_block`.
    """
    x = read_block_input(raw, write_roi, layout, normalisation)
    return forward_block(model, x, write_roi, layout, device, precision)


def classify(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class id per voxel (uint8 (z, y, x)) from probabilities (classes, z, y, x).

    With two classes a voxel is foreground when p(class 1) >= ``threshold`` (0.5 is the argmax,
    up to exact ties); with more classes the argmax (``threshold`` is then unused).
    """
    if probabilities.shape[0] == 2:
        return (probabilities[1] >= threshold).astype(np.uint8)
    dtype = np.uint8 if probabilities.shape[0] <= 256 else np.uint16
    return np.argmax(probabilities, axis=0).astype(dtype)
