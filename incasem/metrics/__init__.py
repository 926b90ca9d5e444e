"""Segmentation scores computed block by block, so no volume ever has to fit in memory.

`ConfusionCounts` (TP/FP/FN per class) and `ThresholdHistograms` (uint8 probability levels per
class) are additive: workers count each block, the counts are summed, and the scores (F1 = Dice,
precision, recall, IoU = Jaccard) follow from the sums, identical to a whole-volume evaluation.
"""

from incasem.metrics.confusion import (
    ConfusionCounts,
    class_names_for,
    flat_scores,
    foreground_mean,
    format_scores,
    scores,
)
from incasem.metrics.histograms import (
    CALIBRATION_METRIC,
    LEVELS,
    ThresholdHistograms,
    best_threshold_scores,
    level_for_threshold,
    quantise,
)

__all__ = [
    "CALIBRATION_METRIC",
    "LEVELS",
    "ConfusionCounts",
    "ThresholdHistograms",
    "best_threshold_scores",
    "class_names_for",
    "foreground_mean",
    "flat_scores",
    "format_scores",
    "level_for_threshold",
    "quantise",
    "scores",
]
