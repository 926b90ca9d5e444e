"""Data configs: which blocks of which volumes to train on, validate on or predict.

The format is the original incasem's JSON, so its users' files keep working: a dict of named
entries, each one cuboid ROI of one container::

    {
      "cell_1_er": {
        "file": "cell_1/cell_1.zarr",
        "offset": [150, 120, 1295],        # voxels, z, y, x (world position / voxel size)
        "shape": [600, 590, 1350],         # voxels, z, y, x
        "voxel_size": [5, 5, 5],           # nm, z, y, x
        "raw": "volumes/raw_equalized_0.02",
        "labels": {"volumes/labels/er": 1},
        "mask": "volumes/mask",            # optional: voxels where mask == 0 get no loss/metric
        "metric_masks": ["volumes/metric_masks/er"],  # optional: excluded from metrics only
        "ignore_value": 255,               # optional: label value meaning "not annotated"
        "weight": 1.0                      # optional: sampling weight (x annotated volume)
      }
    }

Validation happens in two stages, both before any work starts: the schema (pydantic) checks types
and shapes; `validate_against_data` then opens every dataset's metadata (never its voxels) and
checks that the ROI lies inside each dataset, that voxel sizes agree and that class ids fit the
model. Every problem is one line that names the entry, key, path and the numbers that disagree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from funlib.geometry import Coordinate, Roi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from incasem.errors import IncasemError
from incasem.io.arrays import open_array
from incasem.io.roi import format_roi_voxels, roi_from_voxels

PositiveInt = Annotated[int, Field(gt=0, strict=True)]
Triple = Annotated[list[Annotated[int, Field(strict=True)]], Field(min_length=3, max_length=3)]
PositiveTriple = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]


class DataConfigError(IncasemError):
    """One or more problems in a data config; ``problems`` lists each as one line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        super().__init__(self.problems[0] + more)


class DataEntry(BaseModel):
    """One annotated (or to-be-predicted) block of one container.

    Attributes:
        name: the entry's key in the JSON (filled in by the loader).
        source: the JSON file it came from (filled in by the loader).
        file: the container, relative to the data root or absolute.
        offset: ROI start in voxels (z, y, x), i.e. world position in nm / voxel size.
        shape: ROI size in voxels (z, y, x).
        voxel_size: nm (z, y, x); must equal the datasets' voxel size.
        raw: dataset with the EM image.
        labels: label dataset -> class id (>= 1); voxels > 0 in the dataset get that class.
        mask: dataset whose zero voxels are excluded from loss and metrics.
        metric_masks: datasets whose zero voxels are excluded from metrics only.
        ignore_value: a label value that means "not annotated": such voxels get no loss and no
            metric (they are neither organelle nor background).
        weight: multiplies the entry's annotated volume when sampling training locations.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    source: str = ""
    file: str
    offset: Triple
    shape: PositiveTriple
    voxel_size: PositiveTriple
    raw: str
    labels: dict[str, Annotated[int, Field(ge=1, strict=True)]] = Field(default_factory=dict)
    mask: str | None = None
    metric_masks: list[str] = Field(default_factory=list)
    ignore_value: int | None = None
    weight: Annotated[float, Field(gt=0)] = 1.0

    @field_validator("file", "raw", "mask")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    def path(self, data_root: str | os.PathLike | None) -> Path:
        """The container's path: ``file`` joined to ``data_root`` unless it is absolute."""
        file = Path(self.file).expanduser()
        if file.is_absolute() or data_root is None:
            return file
        return Path(data_root).expanduser() / file

    @property
    def roi(self) -> Roi:
        """The entry's ROI in world units (nm, z, y, x)."""
        return roi_from_voxels(self.offset, self.shape, self.voxel_size)

    @property
    def roi_voxels(self) -> str:
        """``[z0:z1, y0:y1, x0:x1]`` in voxels, for messages."""
        return format_roi_voxels(self.offset, self.shape)

    def datasets(self) -> list[tuple[str, str]]:
        """(role, dataset path) for every dataset the entry names, raw first."""
        found = [("raw", self.raw)] + [("labels", d) for d in self.labels]
        if self.mask is not None:
            found.append(("mask", self.mask))
        found += [("metric_masks", d) for d in self.metric_masks]
        return found


class DataConfig(BaseModel):
    """All entries of one or more data-config files, in file order."""

    entries: list[DataEntry]
    data_root: str | None = None

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, name: str) -> DataEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)


def _describe_pydantic_error(source: str, name: str, error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    shown = json.dumps(value) if not isinstance(value, dict) else "{...}"
    if error["type"] == "missing":
        return f"{source}: entry '{name}': missing key '{location}'"
    if error["type"] == "extra_forbidden":
        return f"{source}: entry '{name}': unknown key '{location}'"
    return f"{source}: entry '{name}': key '{location}' = {shown}: {error['msg']}"


def _parse_file(path: Path) -> tuple[list[DataEntry], list[str]]:
    if not path.is_file():
        return [], [f"{path}: data config not found"]
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return [], [f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"]
    except (OSError, UnicodeDecodeError) as e:
        return [], [f"{path}: cannot read data config ({e})"]
    if not isinstance(content, dict) or not content:
        return [], [f"{path}: a data config is a JSON object of named entries, got {content!r:.60}"]

    entries, problems = [], []
    for name, raw_entry in content.items():
        if not isinstance(raw_entry, dict):
            problems.append(f"{path}: entry '{name}' must be a JSON object, got {raw_entry!r:.60}")
            continue
        if "name" in raw_entry or "source" in raw_entry:
            problems.append(f"{path}: entry '{name}': 'name' and 'source' are reserved keys")
            continue
        try:
            entries.append(DataEntry(name=name, source=str(path), **raw_entry))
        except ValidationError as e:
            problems += [_describe_pydantic_error(str(path), name, err) for err in e.errors()]
    return entries, problems


def load_data_config(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    data_root: str | os.PathLike | None = None,
) -> DataConfig:
    """Parse one or more data-config JSON files (a list, or one comma-separated string).

    Only the schema is checked here (types, required keys, positive sizes, unique names); call
    `validate_against_data` to check the datasets on disk. Raises `DataConfigError` listing every
    problem found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [p.strip() for p in str(paths).split(",") if p.strip()]
    if not paths:
        raise DataConfigError(["no data config given"])
    entries, problems = [], []
    for path in paths:
        file_entries, file_problems = _parse_file(Path(path))
        entries += file_entries
        problems += file_problems

    seen: dict[str, DataEntry] = {}
    for entry in entries:
        # The original upper-cases names into gunpowder array keys; we keep names unique
        # ignoring case so that configs stay portable between the two tools.
        other = seen.get(entry.name.lower())
        if other is not None:
            problems.append(
                f"{entry.source}: entry '{entry.name}' has the same name (ignoring case) as "
                f"entry '{other.name}' in {other.source}"
            )
        seen[entry.name.lower()] = entry
    if problems:
        raise DataConfigError(problems)
    return DataConfig(entries=entries, data_root=str(data_root) if data_root else None)


_USABLE_KINDS = {
    "raw": "u",
    "labels": "uib",
    "mask": "uib",
    "metric_masks": "uib",
}


def _check_ignore_value(ignore_value: int, dtype: np.dtype, where: str) -> list[str]:
    """A problem if ``ignore_value`` cannot occur in labels of ``dtype`` (it would then mark
    nothing as not annotated, silently)."""
    low, high = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    if low <= ignore_value <= high:
        return []
    return [
        f"{where} is {dtype} ({low}..{high}): ignore_value {ignore_value} cannot occur in it, so "
        "no voxel would count as not annotated"
    ]


def _check_dataset(entry: DataEntry, container: Path, role: str, dataset: str) -> list[str]:
    where = f"{entry.name}: {role} '{dataset}'"
    try:
        array = open_array(container, dataset)
    except IncasemError as e:
        return [f"{entry.name}: {role}: {e}"]
    problems = []
    if len(array.voxel_size) != 3 or array.channel_dims != 0:
        return [f"{where} in {container} has shape {list(array.shape)}; expected 3 axes (z, y, x)"]
    if tuple(array.voxel_size) != tuple(entry.voxel_size):
        problems.append(
            f"{where} in {container} has voxel size {list(array.voxel_size)} nm, the entry says "
            f"voxel_size {entry.voxel_size}"
        )
        return problems
    if role == "raw" and np.dtype(array.dtype) != np.uint8:
        problems.append(
            f"{where} in {container} is {array.dtype}; the networks read 8-bit raw (0-255, mapped "
            "to [-1, 1]), so other raw would be predicted as noise: write a uint8 copy with "
            "'incasem convert --dtype uint8' or, for 16-bit data, 'incasem equalize' (uint8 out)"
        )
    elif np.dtype(array.dtype).kind not in _USABLE_KINDS[role]:
        problems.append(f"{where} in {container} has dtype {array.dtype}, unusable as {role}")
    elif role == "labels" and entry.ignore_value is not None:
        problems += _check_ignore_value(entry.ignore_value, np.dtype(array.dtype), where)
    if not array.roi.contains(entry.roi):
        data_offset = array.roi.offset / array.voxel_size
        data_shape = array.roi.shape / array.voxel_size
        problems.append(
            f"{where} ROI {entry.roi_voxels} (voxels) ends outside the dataset "
            f"{format_roi_voxels(data_offset, data_shape)} (voxels, shape {tuple(data_shape)})"
        )
    return problems


def validate_against_data(
    config: DataConfig,
    num_classes: int | None = None,
    data_root: str | os.PathLike | None = None,
) -> None:
    """Check every entry against the data on disk, reading metadata only.

    Args:
        config: a parsed config (see `load_data_config`).
        num_classes: if given, every label class id must be < num_classes (class 0 is
            background).
        data_root: directory relative ``file`` paths are joined to; default the config's own.

    Raises `DataConfigError` with one line per problem: missing container or dataset, ROI outside
    a dataset, voxel size or dtype mismatch, class id out of range, duplicated class ids.
    """
    data_root = data_root if data_root is not None else config.data_root
    problems: list[str] = []
    for entry in config:
        container = entry.path(data_root)
        if not container.exists():
            problems.append(f"{entry.name}: file '{entry.file}' not found (looked at {container})")
            continue
        for role, dataset in entry.datasets():
            problems += _check_dataset(entry, container, role, dataset)
        for dataset, class_id in entry.labels.items():
            if num_classes is not None and class_id >= num_classes:
                problems.append(
                    f"{entry.name}: labels '{dataset}' has class id {class_id}, but the model has "
                    f"num_classes={num_classes} (class ids must be below it; 0 is background)"
                )
    if problems:
        raise DataConfigError(problems)


def check_data_config(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    data_root: str | os.PathLike | None = None,
    num_classes: int | None = None,
) -> DataConfig:
    """Load and fully validate a data config; the one call entry points make before any work."""
    config = load_data_config(paths, data_root=data_root)
    validate_against_data(config, num_classes=num_classes)
    return config


def entry_voxel_size(config: DataConfig) -> Coordinate:
    """The voxel size (nm, z, y, x) shared by all entries; raises if entries disagree."""
    sizes = {tuple(entry.voxel_size) for entry in config}
    if len(sizes) != 1:
        described = ", ".join(f"'{e.name}' {e.voxel_size}" for e in config)
        raise DataConfigError([f"entries have different voxel sizes: {described}"])
    return Coordinate(sizes.pop())
