"""Where predictions go, how they are named, and what they record about themselves.

Layout inside the output container (by default the input container, as in the original)::

    volumes/predictions/<model>/predict_<id>/            provenance of the run
        <entry>/                                        one group per data-config entry
            prob_maps/class_<c>                         p(class c), uint8 (p * 255) or float32
            segmentation                                class id per voxel (uint8), 0 outside mask
            .daisy/                                     block markers, block metrics, worker logs

``<model>`` is ``train_<run id>`` (4 digits) for a run from the run store, else the checkpoint's
file name; ``<id>`` is new for every run (one more than any id there, reserved with an atomic
``mkdir``, so two runs started together never share one), which means a prediction never
overwrites another. Every entry gets its own datasets, so two ROIs of one container never write
into each other's chunks. Datasets cover exactly the entry's ROI, with its offset in nm and the
voxel size in both the ``resolution`` and ``voxel_size`` attributes, chunked like the blocks.

Before anything is created, every target is checked (exists? writable?), so a bad request writes
nothing.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from funlib.geometry import Roi

from incasem.errors import IncasemError
from incasem.io import create_array, open_array
from incasem.predict.geometry import BlockLayout

PREDICTIONS_ROOT = "volumes/predictions"
_PREDICTION_NAME = re.compile(r"^predict_(\d+)$")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``_.-`` replaced by ``_`` (group names)."""
    return _SAFE.sub("_", name).strip("_") or "entry"


def model_folder(run_id: int | None, checkpoint: Path) -> str:
    """``train_<run id:04d>`` for a run from the run store, else the checkpoint's file stem."""
    return f"train_{run_id:04d}" if run_id is not None else safe_name(checkpoint.stem)


def timestamp() -> str:
    """The time now (UTC, ISO 8601 to the second), as the outputs' attributes record it."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def prediction_group(model: str, prediction_id: int) -> str:
    """``volumes/predictions/<model>/predict_<id:04d>``."""
    return f"{PREDICTIONS_ROOT}/{model}/predict_{prediction_id:04d}"


def group_exists(container: Path, group: str) -> bool:
    """Whether ``group`` exists (as a group or array) in a directory container."""
    path = container / group
    return (path / ".zgroup").is_file() or (path / ".zarray").is_file()


def check_writable(container: Path) -> None:
    """Raise `IncasemError` unless ``container`` can be created or written to.

    Creates and deletes a temporary file in the deepest existing folder (permission bits do not
    stop root; a read-only file system or a file in the way does).
    """
    existing = container
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise IncasemError(f"{container}: cannot write there ({existing} is not a folder)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise IncasemError(f"{container}: not writable ({e.strerror or e})") from None


def existing_ids(container: Path, model: str) -> list[int]:
    """Prediction ids under ``volumes/predictions/<model>`` of a container."""
    folder = container / PREDICTIONS_ROOT / model
    if not folder.is_dir():
        return []
    return sorted(
        int(m.group(1)) for p in folder.iterdir() if (m := _PREDICTION_NAME.match(p.name))
    )


def reserve_prediction(
    containers: Sequence[Path], model: str, preferred: int | None = None
) -> tuple[int, str]:
    """Pick a new prediction id free in every container and claim its group in each.

    ``preferred`` is the id to take if it is free (the prediction's run id ``pN``, so that
    ``runs show pN`` and ``predict_<N>`` name the same prediction); otherwise, or without one,
    the next id after those the containers hold. The claim is a ``mkdir`` (atomic: of two runs
    starting together, one gets the id and the other moves on to the next). Returns (id, group
    path).
    """
    taken = {i for c in containers for i in existing_ids(c, model)}
    if preferred is not None and preferred not in taken:
        prediction_id = preferred
    else:
        prediction_id = 1 + max(taken, default=0)
    while True:
        group = prediction_group(model, prediction_id)
        claimed: list[Path] = []
        try:
            for container in containers:
                zarr.open_group(str(container), mode="a").require_group(
                    f"{PREDICTIONS_ROOT}/{model}"
                )
                (container / group).mkdir()
                claimed.append(container / group)
        except FileExistsError:
            for path in claimed:
                path.rmdir()
            prediction_id += 1
            continue
        for container in containers:
            zarr.open_group(str(container), mode="a", path=group)
        return prediction_id, group


@dataclass(frozen=True)
class EntryOutputs:
    """Datasets of one entry inside its output container.

    Attributes:
        container: the output container.
        group: the entry's group, ``<prediction group>/<entry>``.
        probabilities: one dataset per class, class 0 (background) first.
        segmentation: the class-id dataset.
    """

    container: Path
    group: str
    probabilities: tuple[str, ...]
    segmentation: str

    @classmethod
    def for_entry(
        cls, container: Path, prediction: str, entry_name: str, num_classes: int
    ) -> EntryOutputs:
        """The dataset paths of an entry in a prediction group."""
        group = f"{prediction}/{safe_name(entry_name)}"
        return cls(
            container=container,
            group=group,
            probabilities=tuple(f"{group}/prob_maps/class_{c}" for c in range(num_classes)),
            segmentation=f"{group}/segmentation",
        )

    @property
    def work_dir(self) -> Path:
        """Folder for block markers, block metrics and worker logs (inside the entry group)."""
        return self.container / self.group / ".daisy"

    def datasets(self) -> list[str]:
        """All dataset paths, probabilities first."""
        return [*self.probabilities, self.segmentation]

    def create(
        self,
        roi: Roi,
        layout: BlockLayout,
        probability_dtype: str,
        class_names: Sequence[str],
        attrs: dict[str, Any],
        carried: dict[str, Any] | None = None,
    ) -> None:
        """Create the entry group and its (empty) datasets over ``roi`` (nm).

        ``carried`` (the raw's ``voxel_size_exact_nm``, `incasem.io.carried_voxel_size_attrs`)
        is stored on every dataset.
        Chunks equal the block write size, so no two blocks ever write the same chunk. With
        ``attrs["threshold"]`` (two classes), the class-1 probabilities record it as their
        ``threshold`` attribute, the default of ``segment`` and ``instances``.
        """
        root = zarr.open_group(str(self.container), mode="a")
        root.require_group(self.group).attrs.update(attrs)
        shape = roi.shape / layout.voxel_size
        for class_id, dataset in enumerate(self.probabilities):
            meaning = (
                "probability * 255, rounded" if probability_dtype == "uint8" else "probability"
            )
            create_array(
                self.container,
                dataset,
                shape,
                layout.voxel_size,
                roi.begin,
                dtype=np.dtype(probability_dtype),
                chunks=layout.write_shape,
                attrs={
                    "class_id": class_id,
                    "class_name": class_names[class_id],
                    "value": meaning,
                    "provenance_hash": attrs["provenance_hash"],
                    **_decision(attrs.get("threshold"), class_id),
                    **(carried or {}),
                },
            )
        create_array(
            self.container,
            self.segmentation,
            shape,
            layout.voxel_size,
            roi.begin,
            dtype=np.uint8 if len(class_names) <= 256 else np.uint16,
            chunks=layout.write_shape,
            attrs={
                "class_names": list(class_names),
                "value": "class id (0 = background; 0 outside the entry's mask)",
                "provenance_hash": attrs["provenance_hash"],
                **(carried or {}),
            },
        )

    def check_existing(self, roi: Roi, layout: BlockLayout) -> None:
        """Raise `IncasemError` unless the datasets exist over ``roi`` with block-sized chunks."""
        for dataset in self.datasets():
            array = open_array(self.container, dataset)
            chunks = zarr.open_array(str(self.container), mode="r", path=dataset).chunks
            if array.roi != roi or tuple(chunks[-3:]) != tuple(layout.write_shape):
                raise IncasemError(
                    f"{self.container}/{dataset} covers {array.roi} with chunks {chunks}; this "
                    f"prediction needs {roi} with chunks {tuple(layout.write_shape)} (use a new "
                    "prediction instead of resuming)"
                )

    def attrs(self) -> dict[str, Any]:
        """The entry group's attributes."""
        return dict(zarr.open_group(str(self.container), mode="r", path=self.group).attrs)

    def update_attrs(self, values: dict[str, Any]) -> None:
        """Add or replace attributes of the entry group."""
        zarr.open_group(str(self.container), mode="a", path=self.group).attrs.update(values)

    def delete(self) -> None:
        """Remove the entry group with its datasets, markers and logs."""
        root = zarr.open_group(str(self.container), mode="a")
        if self.group in root:
            del root[self.group]


def _decision(threshold: float | None, class_id: int) -> dict[str, float]:
    return {"threshold": threshold} if threshold is not None and class_id == 1 else {}


def set_group_attrs(container: Path, group: str, values: dict[str, Any]) -> None:
    """Add or replace attributes of a group (created if missing)."""
    zarr.open_group(str(container), mode="a", path=group).attrs.update(values)


def delete_group(container: Path, group: str) -> None:
    """Remove a group and everything in it."""
    root = zarr.open_group(str(container), mode="a")
    if group in root:
        del root[group]


def container_path(path: str | os.PathLike) -> Path:
    """Absolute, user-expanded path of a container."""
    return Path(path).expanduser().absolute()
