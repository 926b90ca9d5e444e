"""Cross entropy weighted per voxel, for sparse and class-imbalanced annotations.

Organelles fill a few percent of a FIB-SEM block, and annotations are partial: voxels outside the
annotated mask must not contribute. gunpowder's BalanceLabels folds both into one per-voxel scale
(class-balancing weight times mask), so the loss is the scale-weighted mean of the per-voxel cross
entropy, as in incasem's ``CrossEntropyLossWithScalingAndMeanReduction``. A random training block
can lie entirely outside the mask; its loss is then a zero that keeps the graph (gunpowder calls
``backward`` on it) instead of 0/0 = NaN, which would poison the weights.

``loss.type: cross_entropy_dice`` adds a soft Dice term over the organelle classes: cross entropy
scores every voxel on its own, while Dice scores the overlap that IoU and F1 measure, so it
pushes the network toward the decision the evaluation rewards (nnU-Net trains with the same sum).

``model.deep_supervision`` adds the same loss on the logits of the network's coarser decoder
levels (`ASEMUNet.forward_with_aux`), so the gradient reaches them without passing through the
finer levels first, as nnU-Net trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from incasem.torch.models.unet import center_crop


def masked_balanced_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scale-weighted mean cross entropy: ``sum(ce * scale) / sum(scale)``.

    Args:
        logits: Unnormalised class scores, (batch, class, z, y, x).
        target: Class index of every voxel, (batch, z, y, x); any integer type.
        scale: Non-negative weight of every voxel (class balancing times mask), float,
            (batch, z, y, x).
        class_weights: Optional factor per class, (class,), multiplying the cross entropy of the
            voxels of that class (``torch.nn.CrossEntropyLoss``'s ``weight``).

    Returns:
        A scalar tensor; zero, still connected to ``logits``, when ``scale`` sums to zero.
    """
    cross_entropy = nn.functional.cross_entropy(
        logits, target.long(), weight=class_weights, reduction="none"
    )
    total = scale.sum()
    weighted = (cross_entropy * scale).sum()
    # With an all-zero scale the numerator is an exact zero with a zero gradient; dividing it by 1
    # instead of 0 keeps both.
    return weighted / torch.where(total > 0, total, torch.ones_like(total))


def masked_soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, smooth: float = 1.0
) -> torch.Tensor:
    """One minus the mean soft Dice of the organelle classes over the annotated voxels.

    Dice of class c = (2 * sum(p_c * y_c) + smooth) / (sum(p_c) + sum(y_c) + smooth), sums over
    the voxels whose ``scale`` is positive (the annotated ones; class balancing does not enter),
    ``p`` the softmax probability and ``y`` the one-hot target. Class 0 (background) is left
    out: its Dice is near one whatever the organelles do.

    Args:
        logits: Unnormalised class scores, (batch, class, z, y, x), at least two classes.
        target: Class index of every voxel, (batch, z, y, x); any integer type.
        scale: Per-voxel weight, (batch, z, y, x); only ``scale > 0`` is used, as the mask.
        smooth: Added to numerator and denominator (in voxels), so a block without the class
            asks for probabilities near zero instead of dividing by zero.

    Returns:
        A scalar tensor in [0, 1].
    """
    valid = (scale > 0).to(logits.dtype).unsqueeze(1)
    probabilities = torch.softmax(logits, dim=1)[:, 1:] * valid
    classes = torch.arange(1, logits.shape[1], device=logits.device).view(1, -1, 1, 1, 1)
    one_hot = (target.long().unsqueeze(1) == classes).to(logits.dtype) * valid
    axes = (0, 2, 3, 4)
    intersection = (probabilities * one_hot).sum(axes)
    dice = (2 * intersection + smooth) / (probabilities.sum(axes) + one_hot.sum(axes) + smooth)
    return 1 - dice.mean()


def upsample_logits(
    logits: torch.Tensor, factor: Sequence[int], shape: Sequence[int]
) -> torch.Tensor:
    """Coarse logits brought to the output's voxels: repeated ``factor`` times along z, y, x
    (nearest neighbour) and centre-cropped to ``shape`` (voxels, z, y, x).

    A coarser decoder level of a valid U-Net covers a larger region than the output, centred
    on it, so the crop aligns the two to within a coarse voxel.

    Args:
        logits: (batch, class, z, y, x) at ``factor`` times the output's voxel size.
        factor: Voxel size ratio per axis, (z, y, x).
        shape: The output's spatial shape in voxels, (z, y, x).

    Raises:
        ValueError: If the upsampled logits do not cover ``shape``.
    """
    for axis, repeats in zip((2, 3, 4), factor, strict=True):
        logits = logits.repeat_interleave(repeats, dim=axis)
    if any(have < want for have, want in zip(logits.shape[2:], shape, strict=True)):
        raise ValueError(
            f"upsampled logits {tuple(logits.shape[2:])} do not cover the output {tuple(shape)}"
        )
    return center_crop(logits, shape)


def deep_supervision_weights(num_aux: int) -> list[float]:
    """Weights of the output and ``num_aux`` coarser heads: halving per level (1, 1/2, 1/4,
    ...), normalised to sum to one, as nnU-Net weighs them."""
    raw = [0.5**level for level in range(num_aux + 1)]
    return [weight / sum(raw) for weight in raw]


class MaskedBalancedCrossEntropy(nn.Module):
    """:func:`masked_balanced_cross_entropy` as the loss of gunpowder's torch ``Train`` node.

    Its ``forward(logits, target, scale)`` matches ``loss_inputs={0: PREDICTIONS, 1: LABELS,
    2: LOSS_SCALINGS}``.

    Args:
        class_weights: Optional factor per class multiplying that class's cross entropy
            (incasem's ``loss.weight``, default all ones).
        dice: Add :func:`masked_soft_dice_loss` to the cross entropy (``loss.type:
            cross_entropy_dice``); default False.
        aux_factors: Deep supervision: per coarser head of the network
            (`ASEMUNet.aux_factors`), its voxel size over the output's, (z, y, x). Then
            ``forward`` takes ``(logits, [aux logits, ...])`` and returns the
            `deep_supervision_weights`-weighted sum of the loss of each, the aux logits
            brought to the output's voxels by `upsample_logits`. Default none.

    Attributes:
        empty_batches: Number of batches seen whose scale summed to zero (no voxel contributed to
            the loss).
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        dice: bool = False,
        aux_factors: Sequence[Sequence[int]] = (),
    ) -> None:
        super().__init__()
        self.dice = dice
        self.aux_factors = [tuple(factor) for factor in aux_factors]
        self.weights = deep_supervision_weights(len(self.aux_factors))
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32),
            persistent=False,
        )
        self.empty_batches = 0

    def forward(
        self,
        logits: torch.Tensor | tuple[torch.Tensor, Sequence[torch.Tensor]],
        target: torch.Tensor,
        scale: torch.Tensor,
    ) -> torch.Tensor:
        """Loss for logits (batch, class, z, y, x), target and scale (batch, z, y, x); with
        ``aux_factors``, ``logits`` is ``(logits, [aux logits, ...])``."""
        if not scale.sum() > 0:
            self.empty_batches += 1
        if not self.aux_factors:
            return self._loss(logits, target, scale)
        logits, aux = logits
        if len(aux) != len(self.aux_factors):
            raise ValueError(f"expected {len(self.aux_factors)} aux logits, got {len(aux)}")
        shape = logits.shape[2:]
        total = self.weights[0] * self._loss(logits, target, scale)
        for weight, factor, head in zip(self.weights[1:], self.aux_factors, aux, strict=True):
            total = total + weight * self._loss(upsample_logits(head, factor, shape), target, scale)
        return total

    def _loss(
        self, logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        class_weights = None
        if self.class_weights is not None:
            class_weights = self.class_weights.to(device=logits.device, dtype=logits.dtype)
        loss = masked_balanced_cross_entropy(logits, target, scale, class_weights)
        if self.dice:
            loss = loss + masked_soft_dice_loss(logits, target, scale)
        return loss
