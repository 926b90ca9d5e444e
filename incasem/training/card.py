"""The model card a training run saves with every checkpoint: sizes, voxel size, classes, the
training data's digest and grey-value histogram, and the user's extra nodes.
"""

from __future__ import annotations

from incasem.digest import digest_files
from incasem.io import open_array
from incasem.io.data_config import DataConfig
from incasem.io.intensity import sample_histogram
from incasem.pipeline.extra_nodes import describe_nodes
from incasem.torch.checkpoint import ModelCard
from incasem.torch.models import ASEMUNet
from incasem.training.checks import TrainingData
from incasem.training.config import TrainingConfig


def training_raw_histogram(data: DataConfig, data_root: str | None) -> list[int]:
    """Grey-value counts (256 levels) of the training raw, sampled over every entry's ROI, for
    the model card (see `incasem.io.intensity`)."""
    counts = sum(
        sample_histogram(open_array(entry.path(data_root), entry.raw), entry.roi) for entry in data
    )
    return [int(c) for c in counts]


def _model_card(config: TrainingConfig, model: ASEMUNet, data: TrainingData) -> ModelCard:
    """The card saved with every checkpoint of the run (iteration, metrics and threshold are
    filled in at each save)."""
    return ModelCard(
        hparams=model.hparams(),
        input_size_voxels=list(config.training.input_size_voxels),
        output_size_voxels=list(config.training.output_size_voxels),
        voxel_size=list(config.data.voxel_size),
        class_names=config.class_names,
        data_digest=digest_files(data.train_files),
        raw_histogram=training_raw_histogram(data.train, config.directories.data),
        training_nodes=describe_nodes(config.training.pipeline.extra_nodes),
    )
