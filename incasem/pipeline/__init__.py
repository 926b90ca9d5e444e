"""gunpowder pipelines assembled from data configs: one source branch per data-config entry,
joined and augmented for training."""

from incasem.pipeline.training import (
    TrainingKeys,
    TrainingPipeline,
    batch_pipeline,
    training_pipeline,
    training_request,
)

__all__ = [
    "TrainingKeys",
    "TrainingPipeline",
    "batch_pipeline",
    "training_pipeline",
    "training_request",
]
