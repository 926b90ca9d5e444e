"""Predict a numpy array in memory, for notebooks: the blocks of a prediction, without daisy.

`load_model` reads a checkpoint once; `Model.predict` walks the array's blocks with the block
layout ``incasem predict`` uses by default and the same `predict_block` (context read from the
array and mirrored beyond it, intensities normalised as in training), so its probabilities are
those a blockwise prediction of the same volume stored as zarr writes, up to float rounding.
Nothing is written to disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from incasem.errors import IncasemError
from incasem.predict.block import classify, predict_block
from incasem.predict.block_size import default_input_size
from incasem.predict.device import resolve_device
from incasem.predict.geometry import BlockLayout

if TYPE_CHECKING:
    from incasem.torch.checkpoint import ModelCard


class Model:
    """A trained network with its model card, ready to predict arrays in memory.

    Attributes:
        path: the checkpoint it was loaded from.
        card: the model card (voxel size in nm, class names, training sizes in voxels, the
            calibrated threshold, the training nodes).
        device: where the network runs (``"cpu"`` or ``"cuda:N"``).
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        """Load the checkpoint at ``path`` onto ``device`` (``"auto"``: a GPU if there is one,
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a GPU index). Raises `IncasemError` for a file
        that is not an incasem checkpoint."""
        from incasem.torch.checkpoint import load_checkpoint
        from incasem.torch.models import place_model

        kind, gpus = resolve_device(device, None, None)
        self.device = f"cuda:{gpus[0] if gpus else 0}" if kind == "cuda" else "cpu"
        self.path = Path(path)
        checkpoint = load_checkpoint(self.path, map_location=self.device)
        self.card: ModelCard = checkpoint.card
        self._network = place_model(checkpoint.model, self.device).eval()

    @property
    def class_names(self) -> list[str]:
        """One name per output channel, background first."""
        return list(self.card.class_names)

    @property
    def voxel_size(self) -> list[int]:
        """The voxel size the model was trained at, nm (z, y, x)."""
        return list(self.card.voxel_size)

    def layout(self, input_size_voxels: Sequence[int] | None = None) -> BlockLayout:
        """The block geometry for a network input of ``input_size_voxels`` (z, y, x); default
        the one ``incasem predict`` uses (the smallest input whose output covers the training
        output and 110 voxels)."""
        network = self._network
        input_size = input_size_voxels or default_input_size(
            self.card.output_size_voxels, network.downsample_factors, network.head_kernel_size
        )
        return BlockLayout.for_network(
            input_size, self.card.voxel_size, network.downsample_factors, network.head_kernel_size
        )

    def predict(
        self,
        raw: np.ndarray,
        voxel_size: Sequence[int] | None = None,
        input_size_voxels: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Class probabilities of a whole volume, float32, shape (classes, z, y, x).

        Args:
            raw: the EM volume, uint8, axes (z, y, x), prepared as the training raw was (e.g.
                CLAHE-equalised).
            voxel_size: its voxel size in nm (z, y, x); must equal the model's
                (`voxel_size`). Default: the model's.
            input_size_voxels: network input per block (z, y, x); default as in `layout`.

        Every voxel is predicted with its full context: beyond the array, raw is mirrored, as
        in a blockwise prediction of the same array stored as a zarr dataset.

        Raises:
            IncasemError: not a 3D uint8 array, or another voxel size than the model's.
        """
        raw = np.asarray(raw)
        if raw.ndim != 3 or raw.dtype != np.uint8:
            raise IncasemError(
                f"raw: expected a 3D uint8 array (z, y, x), got {raw.dtype} of shape "
                f"{list(raw.shape)} (the networks read 8-bit raw)"
            )
        voxel_size = Coordinate(voxel_size or self.card.voxel_size)
        if list(voxel_size) != list(self.card.voxel_size):
            raise IncasemError(
                f"voxel_size {list(voxel_size)} nm: the model {self.path} was trained at "
                f"{self.card.voxel_size} nm"
            )
        layout = self.layout(input_size_voxels)
        array = Array(raw, offset=(0, 0, 0), voxel_size=voxel_size)
        roi = Roi((0, 0, 0), Coordinate(raw.shape) * voxel_size)
        out = np.empty((len(self.card.class_names), *raw.shape), np.float32)
        for write_roi in layout.write_rois(roi):
            probabilities = predict_block(
                self._network, array, write_roi, layout, self.card.normalisation, self.device
            )
            begin = write_roi.begin / voxel_size
            end = write_roi.end / voxel_size
            out[:, begin[0] : end[0], begin[1] : end[1], begin[2] : end[2]] = probabilities
        return out

    def segment(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Class id per voxel, uint8 (z, y, x), from `predict`'s probabilities: with two
        classes foreground where p(class 1) >= ``threshold`` (default the model's calibrated
        threshold, else 0.5); with more, the most probable class."""
        chosen = self.card.decision_threshold()[0] if threshold is None else threshold
        return classify(probabilities, chosen)


def load_model(path: str | os.PathLike, device: str = "auto") -> Model:
    """Load a checkpoint (``.pt``, from training or ``incasem export``) to predict numpy arrays
    in memory: ``load_model("model.pt").predict(raw, voxel_size=[5, 5, 5])`` gives the class
    probabilities, float32 (classes, z, y, x). See `Model`."""
    return Model(path, device)
