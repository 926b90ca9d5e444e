"""Our gunpowder nodes: one small node per idea, read like gunpowder's own.

They cover what gunpowder 1.4 does not: sparse annotations (a valid mask that is zero outside
the annotated ROI, label values meaning "not annotated"), several label datasets merged into class
ids, foreground-biased sampling that never loops forever, gamma augmentation, an elastic
deformation fast enough to feed a GPU, worker processes that share the cores instead of
oversubscribing them, a prefetch that takes the hand-over of a prepared batch off the training
step's critical path, and a training step that does not wait for the GPU to finish it.
"""

from incasem.gunpowder.deferred_loss_train import DeferredLossTrain
from incasem.gunpowder.elastic_deform import ElasticDeform
from incasem.gunpowder.exclude_value import ExcludeValue
from incasem.gunpowder.foreground_biased_location import ForegroundBiasedLocation
from incasem.gunpowder.gamma_augment import GammaAugment
from incasem.gunpowder.merge_labels import MergeLabels
from incasem.gunpowder.prefetch import Prefetch
from incasem.gunpowder.thread_limited_precache import ThreadLimitedPreCache, threads_per_worker
from incasem.gunpowder.valid_mask import ValidMask

__all__ = [
    "DeferredLossTrain",
    "ElasticDeform",
    "ExcludeValue",
    "ForegroundBiasedLocation",
    "GammaAugment",
    "MergeLabels",
    "Prefetch",
    "ThreadLimitedPreCache",
    "ValidMask",
    "threads_per_worker",
]
