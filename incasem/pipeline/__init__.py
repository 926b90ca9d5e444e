"""gunpowder pipelines assembled from data configs: one source branch per data-config entry,
joined and augmented for training."""

from incasem.pipeline.training import TrainingKeys, training_pipeline, training_request

__all__ = ["TrainingKeys", "training_pipeline", "training_request"]
