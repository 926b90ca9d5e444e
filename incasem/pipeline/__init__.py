"""gunpowder pipelines assembled from data configs: one source branch per data-config entry,
joined and augmented for training, with a user's own nodes at named places
(`incasem.pipeline.extra_nodes`), built from their own settings (`incasem.pipeline.settings`,
which a training config gives).

Names are resolved on first use, so that the training config schema can read the places
without importing torch and gunpowder.
"""

from __future__ import annotations

from incasem.lazy import lazy_exports

_EXPORTS = {
    "ExtraNode": "incasem.pipeline.extra_nodes",
    "PLACES": "incasem.pipeline.extra_nodes",
    "PipelineSettings": "incasem.pipeline.settings",
    "TrainingKeys": "incasem.pipeline.training",
    "TrainingPipeline": "incasem.pipeline.training",
    "batch_pipeline": "incasem.pipeline.training",
    "training_pipeline": "incasem.pipeline.training",
    "training_request": "incasem.pipeline.training",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
