"""Write a new dataset under a hidden name and give it its final name only when it is complete.

A blockwise job that crashes (killed worker, full disk, Ctrl-C) leaves a partly written array. If
that array already had its final name, the next step (training, a data config, a viewer) would
read zeros where blocks are missing and nobody would notice. We therefore create every output as
a hidden sibling ``.<name>.incomplete-<id>`` in the same group, and rename it into place after the
last block succeeded. An existing dataset of the final name is refused before any work starts
(unless ``overwrite``) and, with ``overwrite``, is only replaced after the new one is complete, so
a failed rerun leaves the old result intact. A failure removes the hidden dataset, and the
container and groups it created if they hold nothing else; a hard crash leaves it behind under
a name that says what it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from funlib.persistence import Array

from incasem.errors import IncasemError
from incasem.io import create_array
from incasem.io.arrays import write_refusal
from incasem.io.budget import array_bytes, check_disk


@dataclass(frozen=True)
class StagedDataset:
    """A dataset being written: workers open ``container``/``staging_name`` to write blocks.

    Attributes:
        container: path of the zarr container.
        dataset: the final dataset path it will get.
        staging_name: the hidden dataset path it is written under.
        array: the staged array, opened for writing (voxel size and offset in nm, z, y, x).
    """

    container: Path
    dataset: str
    staging_name: str
    array: Array


def _root(container: Path) -> zarr.Group:
    try:
        return zarr.open_group(str(container), mode="a")
    except (zarr.errors.ContainsArrayError, OSError, ValueError) as e:
        raise IncasemError(
            f"{container}: cannot open as a zarr container for writing ({e})"
        ) from None


def check_new_dataset(container: str | os.PathLike, dataset: str, overwrite: bool) -> None:
    """Raise `IncasemError` if ``dataset`` exists in ``container`` and ``overwrite`` is false.

    Call it for every output before starting any work, so that a refused output does not waste a
    long run on the outputs before it.
    """
    container = Path(container)
    if overwrite or not container.exists():
        return
    try:
        root = zarr.open_group(str(container), mode="r")
    except (zarr.errors.GroupNotFoundError, zarr.errors.PathNotFoundError, ValueError):
        return  # not a zarr group (yet): creating the dataset will say what is wrong
    if dataset.strip("/") in root:
        raise IncasemError(f"{container}/{dataset} already exists; pass --overwrite to replace it")


def _sibling(dataset: str, tag: str) -> str:
    parent, _, leaf = dataset.strip("/").rpartition("/")
    hidden = f".{leaf}.{tag}-{uuid.uuid4().hex[:8]}"
    return f"{parent}/{hidden}" if parent else hidden


def _missing_groups(container: Path, dataset: str) -> list[str]:
    """The groups (``""`` for the container itself) that writing ``dataset`` will create,
    outermost first."""
    parts = dataset.split("/")[:-1]
    groups = [""] + ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return [group for group in groups if not (container / group / ".zgroup").exists()]


def _remove_empty(container: Path, root: zarr.Group, created: list[str]) -> None:
    """Delete the groups a failed write created, innermost first, where nothing else was put
    in them meanwhile; the container too if it was new, so a failure leaves no trace."""
    for group in reversed(created):
        if group and group in root and len(root[group]) == 0:
            del root[group]
    if "" in created and len(root) == 0:
        shutil.rmtree(container, ignore_errors=True)


@contextmanager
def staged_dataset(
    container: str | os.PathLike,
    dataset: str,
    shape: Sequence[int],
    voxel_size: Sequence[int],
    offset: Sequence[int] | None = None,
    dtype: Any = np.uint8,
    chunks: Sequence[int] | None = None,
    num_channels: int | None = None,
    overwrite: bool = False,
    attrs: dict[str, Any] | None = None,
) -> Iterator[StagedDataset]:
    """Create a dataset under a hidden name; on success rename it to ``dataset``.

    Arguments are those of `incasem.io.create_array`: ``shape`` and ``chunks`` in voxels,
    ``voxel_size`` and ``offset`` in nm, all z, y, x. An existing ``dataset`` raises
    `IncasemError` unless ``overwrite``; with ``overwrite`` it is replaced only after the body of
    the ``with`` block finished without an exception. On an exception the hidden dataset is
    deleted, and so are the groups and the container it created if they hold nothing else, and
    the exception propagates. An output whose uncompressed size exceeds the free disk is refused
    before anything is created (`incasem.io.budget.check_disk`).
    """
    container = Path(container)
    dataset = dataset.strip("/")
    if container.suffix == ".n5":
        raise IncasemError(
            f"{container}: incasem writes zarr containers only; choose an output ending in .zarr"
        )
    check_new_dataset(container, dataset, overwrite)
    channels = [] if num_channels is None else [num_channels]
    check_disk(f"{container}/{dataset}", container, array_bytes([*channels, *shape], dtype))
    created = _missing_groups(container, dataset)
    staging_name = _sibling(dataset, "incomplete")
    try:
        array = create_array(
            container,
            staging_name,
            shape,
            voxel_size,
            offset=offset,
            dtype=dtype,
            chunks=chunks,
            num_channels=num_channels,
            attrs=attrs,
        )
    except (OSError, KeyError) as e:
        refusal = write_refusal(f"{container}/{dataset}", e)
        if refusal is None:
            raise
        shutil.rmtree(container / staging_name, ignore_errors=True)
        with contextlib.suppress(IncasemError, OSError):
            _remove_empty(container, _root(container), created)
        raise refusal from None
    except IncasemError as e:  # name the dataset the user asked for, not its hidden name
        raise IncasemError(str(e).replace(staging_name, dataset)) from None
    root = _root(container)
    try:
        yield StagedDataset(container, dataset, staging_name, array)
    except BaseException:
        if staging_name in root:
            del root[staging_name]
        _remove_empty(container, root, created)
        raise
    if dataset in root:
        if not overwrite:
            del root[staging_name]
            raise IncasemError(
                f"{container}/{dataset} appeared while it was being written; the new result was "
                "discarded (pass --overwrite to replace it)"
            )
        old = _sibling(dataset, "old")
        root.move(dataset, old)
        root.move(staging_name, dataset)
        del root[old]
    else:
        root.move(staging_name, dataset)
