"""The masked, class-balanced cross entropy, against hand computation and empty batches."""

import math

import pytest
import torch

from incasem.torch.loss import (
    MaskedBalancedCrossEntropy,
    masked_balanced_cross_entropy,
    masked_soft_dice_loss,
)

# Two classes on 2x2x1 voxels (z, y, x): logits per voxel as (class 0, class 1).
VOXEL_LOGITS = [(2.0, -1.0), (0.5, 0.5), (-3.0, 1.0), (0.0, 4.0)]
TARGET = [0, 1, 1, 0]
SCALE = [1.0, 0.5, 0.0, 2.0]


def example(scale: list[float] = SCALE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensors in the layout of gunpowder's Train node: (B, C, z, y, x), (B, z, y, x) twice."""
    logits = torch.tensor(VOXEL_LOGITS, dtype=torch.float64).T.reshape(1, 2, 2, 2, 1)
    target = torch.tensor(TARGET).reshape(1, 2, 2, 1)
    return logits.requires_grad_(), target, torch.tensor(scale).reshape(1, 2, 2, 1)


def hand_computed(class_weights: tuple[float, float] = (1.0, 1.0)) -> float:
    total = 0.0
    for logits, target, scale in zip(VOXEL_LOGITS, TARGET, SCALE, strict=True):
        cross_entropy = math.log(sum(math.exp(v) for v in logits)) - logits[target]
        total += class_weights[target] * cross_entropy * scale
    return total / sum(SCALE)


def test_matches_hand_computation() -> None:
    loss = MaskedBalancedCrossEntropy()(*example())
    assert loss.item() == pytest.approx(hand_computed(), rel=1e-12)


def test_class_weights_scale_each_class() -> None:
    logits, target, scale = example()
    loss = MaskedBalancedCrossEntropy(class_weights=[1.0, 3.0])(logits, target, scale)
    assert loss.item() == pytest.approx(hand_computed((1.0, 3.0)), rel=1e-6)
    direct = masked_balanced_cross_entropy(
        logits, target, scale, torch.tensor([1.0, 3.0], dtype=torch.float64)
    )
    assert direct.item() == pytest.approx(hand_computed((1.0, 3.0)), rel=1e-12)


def test_unit_scale_is_plain_mean_cross_entropy() -> None:
    logits, target, _ = example()
    loss = masked_balanced_cross_entropy(logits, target, torch.ones(1, 2, 2, 1))
    expected = torch.nn.functional.cross_entropy(logits, target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def test_accepts_narrow_integer_labels() -> None:
    logits, target, scale = example()
    loss = masked_balanced_cross_entropy(logits, target.to(torch.uint8), scale)
    assert loss.item() == pytest.approx(hand_computed(), rel=1e-12)


def test_empty_batch_gives_connected_zero_and_is_counted() -> None:
    criterion = MaskedBalancedCrossEntropy(class_weights=[1.0, 2.0])
    logits, target, scale = example(scale=[0.0] * 4)
    loss = criterion(logits, target, scale)
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert logits.grad is not None
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    assert criterion.empty_batches == 1

    criterion(*example(scale=[0.0] * 4))
    criterion(*example())
    assert criterion.empty_batches == 2


def test_gradient_is_finite_for_regular_batch() -> None:
    logits, target, scale = example()
    MaskedBalancedCrossEntropy()(logits, target, scale).backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    # The voxel with zero scale gets no gradient.
    assert torch.equal(logits.grad[0, :, 1, 0, 0], torch.zeros(2, dtype=torch.float64))


def hand_computed_dice(smooth: float = 1.0) -> float:
    """1 - soft Dice of class 1 over the voxels with positive scale."""
    overlap = probability_sum = target_sum = 0.0
    for logits, target, scale in zip(VOXEL_LOGITS, TARGET, SCALE, strict=True):
        if scale <= 0:
            continue
        p = math.exp(logits[1]) / sum(math.exp(v) for v in logits)
        overlap += p * (target == 1)
        probability_sum += p
        target_sum += target == 1
    return 1 - (2 * overlap + smooth) / (probability_sum + target_sum + smooth)


def test_dice_term_matches_hand_computation_and_ignores_unannotated_voxels() -> None:
    logits, target, scale = example()
    assert masked_soft_dice_loss(logits, target, scale).item() == pytest.approx(
        hand_computed_dice(), rel=1e-12
    )
    combined = MaskedBalancedCrossEntropy(dice=True)(logits, target, scale)
    assert combined.item() == pytest.approx(hand_computed() + hand_computed_dice(), rel=1e-12)
    combined.backward()
    assert torch.equal(logits.grad[0, :, 1, 0, 0], torch.zeros(2, dtype=torch.float64))


def test_dice_term_is_zero_for_a_confident_perfect_prediction() -> None:
    target = torch.tensor([0, 1, 1, 0]).reshape(1, 2, 2, 1)
    logits = torch.stack([(1 - target) * 30.0, target * 30.0], dim=1).double()
    assert masked_soft_dice_loss(logits, target, torch.ones(1, 2, 2, 1)).item() == pytest.approx(
        0.0, abs=1e-9
    )


def test_upsample_logits_repeats_and_centre_crops() -> None:
    """Each coarse voxel becomes factor³ voxels; the crop keeps the centre."""
    from incasem.torch.loss import upsample_logits

    coarse = torch.arange(4.0).reshape(1, 1, 1, 1, 4)
    up = upsample_logits(coarse, (1, 1, 2), (1, 1, 6))
    assert up.flatten().tolist() == [0, 1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="do not cover the output"):
        upsample_logits(coarse, (1, 1, 2), (1, 1, 9))


def test_deep_supervision_loss_is_the_weighted_sum_of_each_heads_loss() -> None:
    """Output weight 1, heads 1/2 and 1/4, normalised; an empty batch is counted once."""
    from incasem.torch.loss import deep_supervision_weights, upsample_logits

    assert deep_supervision_weights(2) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 4, 4, 4)
    aux = [torch.randn(1, 2, 3, 3, 3), torch.randn(1, 2, 2, 2, 2)]
    target = torch.randint(0, 2, (1, 4, 4, 4))
    scale = torch.rand(1, 4, 4, 4)
    factors = [(2, 2, 2), (4, 4, 4)]
    loss = MaskedBalancedCrossEntropy(aux_factors=factors)
    heads = [upsample_logits(a, f, (4, 4, 4)) for a, f in zip(aux, factors, strict=True)]
    expected = (
        4 * masked_balanced_cross_entropy(logits, target, scale)
        + 2 * masked_balanced_cross_entropy(heads[0], target, scale)
        + 1 * masked_balanced_cross_entropy(heads[1], target, scale)
    ) / 7
    torch.testing.assert_close(loss((logits, aux), target, scale), expected)
    loss((logits, aux), target, torch.zeros_like(scale))
    assert loss.empty_batches == 1
    with pytest.raises(ValueError, match="expected 2 aux logits, got 1"):
        loss((logits, aux[:1]), target, scale)
