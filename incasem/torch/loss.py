"""Cross entropy weighted per voxel, for sparse and class-imbalanced annotations.

Organelles fill a few percent of a FIB-SEM block, and annotations are partial: voxels outside the
annotated mask must not contribute. gunpowder's BalanceLabels folds both into one per-voxel scale
(class-balancing weight times mask), so the loss is the scale-weighted mean of the per-voxel cross
entropy, as in incasem's ``CrossEntropyLossWithScalingAndMeanReduction``. A random training block
can lie entirely outside the mask; its loss is then a zero that keeps the graph (gunpowder calls
``backward`` on it) instead of 0/0 = NaN, which would poison the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


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


class MaskedBalancedCrossEntropy(nn.Module):
    """:func:`masked_balanced_cross_entropy` as the loss of gunpowder's torch ``Train`` node.

    Its ``forward(logits, target, scale)`` matches ``loss_inputs={0: PREDICTIONS, 1: LABELS,
    2: LOSS_SCALINGS}``.

    Args:
        class_weights: Optional factor per class multiplying that class's cross entropy
            (incasem's ``loss.weight``, default all ones).

    Attributes:
        empty_batches: Number of batches seen whose scale summed to zero (no voxel contributed to
            the loss).
    """

    class_weights: torch.Tensor | None

    def __init__(self, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32),
            persistent=False,
        )
        self.empty_batches = 0

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """Loss for logits (batch, class, z, y, x), target and scale (batch, z, y, x)."""
        if not scale.sum() > 0:
            self.empty_batches += 1
        class_weights = None
        if self.class_weights is not None:
            class_weights = self.class_weights.to(device=logits.device, dtype=logits.dtype)
        return masked_balanced_cross_entropy(logits, target, scale, class_weights)
