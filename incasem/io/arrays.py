"""Open and create zarr (v2) datasets with one metadata contract.

Every dataset incasem reads or writes is a `funlib.persistence.Array`: a lazily indexed zarr array
that knows its voxel size and offset in nm (z, y, x), so ROIs can be cut in world units. We open
arrays ourselves instead of calling ``funlib.persistence.open_ds`` with its defaults because its
default reader silently misreads gunpowder's ``resolution`` attribute (see `incasem.io.metadata`).

Creation always makes the root group first (gunpowder's ``ZarrSource`` cannot open a container
without one), chooses and returns the chunk shape (blockwise writers must align their blocks to
it: two workers writing one chunk lose data), and refuses to replace an existing dataset unless the
caller passes ``overwrite=True``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from numcodecs import Blosc

from incasem.errors import IncasemError
from incasem.io.budget import check_memory
from incasem.io.metadata import (
    PhysicalVoxelSize,
    exact_voxel_size_attrs,
    read_physical_voxel_size,
    read_spatial_metadata,
    spatial_attributes,
)

#: Default chunk edge in voxels: 64³ uint8 chunks are 256 KiB, small enough for random access
#: during training and large enough that a whole cell is not millions of files.
DEFAULT_CHUNK_EDGE = 64

_COMPRESSOR = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)


def _is_n5(container: Path) -> bool:
    return container.suffix == ".n5"


def list_datasets(container: str | os.PathLike) -> list[str]:
    """Paths of all arrays inside a container, e.g. ``["volumes/raw", "volumes/labels/mito"]``,
    without hidden (``.``-prefixed) ones."""
    try:
        group = zarr.open_group(str(container), mode="r")
    except (zarr.errors.GroupNotFoundError, zarr.errors.PathNotFoundError, ValueError):
        return []
    found: list[str] = []
    group.visititems(
        lambda name, item: found.append(name) if isinstance(item, zarr.Array) else None
    )
    # Hidden names are outputs still being written (or left by a crash), not datasets.
    return sorted(n for n in found if not any(part.startswith(".") for part in n.split("/")))


def _open_zarr_array(container: Path, dataset: str, mode: str) -> zarr.Array:
    if not container.exists():
        raise IncasemError(f"{container}: no such file or directory")
    try:
        node = zarr.open(str(container), mode=mode, path=dataset)
    except (zarr.errors.PathNotFoundError, zarr.errors.GroupNotFoundError, KeyError, ValueError):
        node = None
    if not isinstance(node, zarr.Array):
        available = ", ".join(list_datasets(container)) or "none"
        raise IncasemError(
            f"{container}: no dataset '{dataset}' (datasets in this container: {available})"
        )
    return node


def _spatial_dims(data: zarr.Array) -> int:
    # Volumes are 3D; leading axes beyond three are channels (e.g. one per class), unless the
    # dataset says otherwise with the OME-style 'types' attribute.
    types = data.attrs.get("types")
    if isinstance(types, list) and len(types) == data.ndim:
        return sum(t in ("space", "time") for t in types)
    return min(data.ndim, 3)


class ZarrArray(Array):
    """A `funlib.persistence.Array` whose ROI reads go straight to zarr.

    funlib reads a ROI through a dask array over the whole dataset, and dask's slicing costs time
    and memory in proportion to the dataset's number of chunks, not to the ROI: a 64³ read of a
    dataset whose metadata claims 10^5 voxels per axis (4·10^9 chunks) grew without end. zarr
    reads only the chunks the ROI touches. Everything else (metadata, writes, lazy views) is
    funlib's.
    """

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, Roi) or self.lazy_ops:
            return super().__getitem__(key)
        if not self.roi.contains(key):
            raise IndexError(f"Requested roi {key} is not contained in this array {self.roi}.")
        begin = (key.begin - self.roi.begin) / self.voxel_size
        end = begin + key.shape / self.voxel_size
        box = tuple(slice(b, e) for b, e in zip(begin, end, strict=True))
        return np.asarray(self._source_data[(Ellipsis, *box)])


def open_array(container: str | os.PathLike, dataset: str, mode: str = "r") -> Array:
    """Open a dataset with its voxel size and offset (nm, z, y, x).

    Args:
        container: path of a ``.zarr`` (or ``.n5``) container.
        dataset: path of the array inside the container, e.g. ``"volumes/raw"``.
        mode: ``"r"`` (read only) or ``"r+"`` (read and write).

    Accepts both the ``resolution`` (gunpowder) and ``voxel_size`` (funlib.persistence)
    attributes and N5's reversed attribute order. Raises `IncasemError` naming the container and
    dataset if either is missing or its metadata is unusable.
    """
    container = Path(container)
    data = _open_zarr_array(container, dataset, mode)
    if 0 in data.shape:
        raise IncasemError(
            f"{container}/{dataset}: shape {list(data.shape)} has an axis of length 0 (no voxels)"
        )
    spatial_dims = _spatial_dims(data)
    meta = read_spatial_metadata(
        data.attrs.asdict(), spatial_dims, f"{container}/{dataset}", n5=_is_n5(container)
    )
    channel_dims = data.ndim - spatial_dims
    return ZarrArray(
        data,
        offset=meta.offset,
        voxel_size=meta.voxel_size,
        axis_names=[f"c{i}^" for i in range(channel_dims)] + ["z", "y", "x"][-spatial_dims:],
        units=["nm"] * spatial_dims,
        types=["channel"] * channel_dims + ["space"] * spatial_dims,
        chunks=data.chunks,
    )


def physical_voxel_size(container: str | os.PathLike, dataset: str) -> PhysicalVoxelSize:
    """The voxel size (nm, z, y, x) for lengths, areas and volumes of a dataset: its exact one
    (``voxel_size_exact_nm``) where recorded, else its grid's (`read_physical_voxel_size`)."""
    container = Path(container)
    data = _open_zarr_array(container, dataset, "r")
    where = f"{container}/{dataset}"
    n5 = _is_n5(container)
    grid = read_spatial_metadata(data.attrs.asdict(), _spatial_dims(data), where, n5).voxel_size
    return read_physical_voxel_size(data.attrs.asdict(), grid, where, n5)


def carried_voxel_size_attrs(
    container: str | os.PathLike, dataset: str, factor: Sequence[int] | None = None
) -> dict[str, Any]:
    """What a dataset derived from ``container/dataset`` carries over of its voxel size: its
    ``voxel_size_exact_nm`` (times ``factor`` when downsampled), or nothing."""
    return exact_voxel_size_attrs(physical_voxel_size(container, dataset), factor)


def default_chunks(shape: Sequence[int]) -> tuple[int, ...]:
    """Chunk shape (voxels, z, y, x) used when the caller does not choose one."""
    return tuple(min(int(s), DEFAULT_CHUNK_EDGE) for s in shape)


def create_array(
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
) -> Array:
    """Create a dataset and return it opened for writing.

    Args:
        container: path of the ``.zarr`` container; created with its root group if missing.
        dataset: path of the new array inside the container.
        shape: spatial shape in voxels, (z, y, x).
        voxel_size: nm, (z, y, x).
        offset: world position of the first voxel in nm, (z, y, x); default 0.
        dtype: numpy dtype of the voxels.
        chunks: spatial chunk shape in voxels; default `default_chunks`. The chosen chunk shape is
            ``returned_array.chunk_shape`` (with a leading channel axis if ``num_channels``).
        num_channels: if given, a leading channel axis of this length (e.g. one per class).
        overwrite: replace an existing dataset of the same path. Without it an existing
            dataset raises `IncasemError` and is left untouched.
        attrs: extra attributes to store (provenance, etc.).
    """
    container = Path(container)
    shape = tuple(int(s) for s in shape)
    voxel_size = Coordinate(voxel_size)
    offset = Coordinate(offset if offset is not None else (0,) * len(shape))
    if len(voxel_size) != len(shape) or len(offset) != len(shape):
        raise IncasemError(
            f"{container}/{dataset}: shape {list(shape)}, voxel size {list(voxel_size)} and "
            f"offset {list(offset)} must have the same number of axes"
        )
    if any(s <= 0 for s in shape):
        raise IncasemError(f"{container}/{dataset}: shape {list(shape)} must be positive")
    if not offset.is_multiple_of(voxel_size):
        raise IncasemError(
            f"{container}/{dataset}: offset {list(offset)} nm is not a multiple of the voxel size "
            f"{list(voxel_size)} nm"
        )
    spatial_chunks = tuple(int(c) for c in chunks) if chunks is not None else default_chunks(shape)
    channel_shape: tuple[int, ...] = () if num_channels is None else (int(num_channels),)

    try:
        root = zarr.open_group(str(container), mode="a")
    except (zarr.errors.ContainsArrayError, OSError, ValueError) as e:
        raise IncasemError(
            f"{container}: cannot open as a zarr container for writing ({e})"
        ) from None
    if dataset in root:
        if not overwrite:
            raise IncasemError(
                f"{container}/{dataset} already exists; pass --overwrite to replace it"
            )
        del root[dataset]
    data = root.create_dataset(
        dataset,
        shape=channel_shape + shape,
        chunks=channel_shape + spatial_chunks,
        dtype=dtype,
        compressor=_COMPRESSOR,
        fill_value=0,
        # Every chunk is stored, zeros too (blosc makes them a few bytes), so that a chunk
        # missing from a copy is known to be lost (see `read_checked`), not all zero.
        write_empty_chunks=True,
    )
    metadata = spatial_attributes(voxel_size, offset, len(channel_shape))
    data.attrs.update({**metadata, **(attrs or {})})
    return open_array(container, dataset, mode="r+")


def write_refusal(what: str, error: BaseException) -> IncasemError | None:
    """The one-line `IncasemError` for a write the file system refused (no permission, a full
    disk, a read-only group), naming ``what``; None when ``error`` is not such a refusal.

    zarr's directory store reports a failed write as a ``KeyError`` (the key, e.g.
    ``volumes/.zgroup``) caused by the ``OSError``; both are recognised.
    """
    cause = error if isinstance(error, OSError) else error.__cause__
    if not isinstance(cause, OSError):
        return None
    where = f": {cause.filename}" if cause.filename else ""
    return IncasemError(f"{what}: cannot write there ({cause.strerror or cause}{where})")


#: Environment variable: set to 1 to read missing chunks as zeros (data written by tools that
#: omit empty chunks); it reaches worker processes, local or on a cluster.
ALLOW_MISSING_CHUNKS = "INCASEM_ALLOW_MISSING_CHUNKS"


#: Environment variable: set to 1 to read the outputs of an unfinished prediction anyway.
ALLOW_INCOMPLETE = "INCASEM_ALLOW_INCOMPLETE"
#: The ``status`` a prediction's entry group records once every block was written.
COMPLETE = "complete"


def check_complete(container: str | os.PathLike, dataset: str) -> None:
    """Raise `IncasemError` (one line) when ``dataset`` lies in a group whose ``status``
    attribute says its writer did not finish: a prediction with failed blocks
    (``incomplete``) or one that was stopped or is still being written (``running``).

    Blocks never written read as zeros, which scores as "nothing found", so no reader of such
    an output may take it for complete. The line names the dataset, its status and failed
    blocks, and how to finish it (the same ``predict`` command with ``--resume ID``); setting
    ``INCASEM_ALLOW_INCOMPLETE=1`` reads it anyway.
    """
    if os.environ.get(ALLOW_INCOMPLETE, "") not in ("", "0"):
        return
    parts = dataset.strip("/").split("/")
    for depth in range(len(parts) - 1, 0, -1):
        group = "/".join(parts[:depth])
        try:
            attrs = zarr.open_group(str(container), mode="r", path=group).attrs.asdict()
        except (zarr.errors.GroupNotFoundError, KeyError, ValueError, OSError):
            continue
        status = attrs.get("status")
        if status is None or status == COMPLETE:
            continue
        blocks = attrs.get("blocks") or {}
        failed = (
            f", {blocks['failed']} of {blocks['total']} blocks failed"
            if isinstance(blocks, dict) and blocks.get("failed")
            else ""
        )
        prediction = next((p for p in parts[:depth] if p.startswith("predict_")), None)
        number = prediction.removeprefix("predict_").lstrip("0") if prediction else ""
        resume = f"--resume {number}" if number.isdigit() else "--resume"
        raise IncasemError(
            f"{container}/{dataset}: unfinished output (status '{status}'{failed}); its "
            f"unwritten blocks read as zeros. Finish it with the same predict command plus "
            f"{resume}, or set {ALLOW_INCOMPLETE}=1 to use it as it is"
        )


def _chunk_keys(source: zarr.Array, array: Array, roi: Roi) -> Iterator[tuple[str, tuple]]:
    """(store key, chunk index) of every chunk of ``source`` that ``roi`` (nm) touches."""
    clipped = roi.intersect(array.roi)
    if clipped.empty:
        return
    begin = (clipped.begin - array.roi.begin) / array.voxel_size
    end = (clipped.end - array.roi.begin) / array.voxel_size
    channel_dims = source.ndim - len(begin)
    chunks = source.chunks[channel_dims:]
    ranges = [range(b // c, (e - 1) // c + 1) for b, e, c in zip(begin, end, chunks, strict=True)]
    separator = getattr(source, "_dimension_separator", None) or "."
    prefix = f"{source.path}/" if source.path else ""
    for index in itertools.product(*ranges):
        full = (0,) * channel_dims + tuple(index)
        yield prefix + separator.join(map(str, full)), full


def array_container(array: Array) -> Path | None:
    """The zarr container (directory) an array is stored in, or None when it is not a zarr array
    in a directory store (in memory, N5 through another backend)."""
    source = getattr(array, "_source_data", None)
    path = getattr(getattr(source, "store", None), "path", None)
    return Path(path) if isinstance(source, zarr.Array) and path is not None else None


def read_padded(array: Array, roi: Roi) -> np.ndarray:
    """``array``'s values over ``roi`` (nm, z, y, x), zeros where the array does not reach.

    Channel axes before the spatial ones are kept; the result has the array's dtype and
    ``roi.shape / voxel_size`` voxels.
    """
    channels = array.shape[: -array.voxel_size.dims]
    shape = tuple(channels) + tuple(roi.shape / array.voxel_size)
    check_memory(f"{array_container(array) or 'array'} ROI {roi}", shape, array.dtype)
    data = np.zeros(shape, dtype=array.dtype)
    inside = roi.intersect(array.roi)
    if not inside.empty:
        begin = (inside.offset - roi.offset) / array.voxel_size
        end = begin + inside.shape / array.voxel_size
        box = tuple(slice(b, e) for b, e in zip(begin, end, strict=True))
        data[(Ellipsis, *box)] = array[inside]
    return data


def read_checked(array: Array, roi: Roi) -> np.ndarray:
    """``array[roi]`` (nm) that refuses missing chunks and names a corrupt one.

    zarr reads a missing chunk as its fill value, silently; inside a raw dataset's extent that
    means a broken copy (an interrupted transfer, a deleted file), and a network would segment
    zeros. A chunk that fails to decompress surfaces as a codec error that names neither the
    dataset nor the chunk. Both become one `IncasemError` naming the container, dataset and
    chunk key. The existence check is one lookup per chunk, nothing next to reading it.
    """
    source = getattr(array, "_source_data", None)
    if not isinstance(source, zarr.Array):
        return array[roi]
    name = f"{array_container(array) or source.store}/{source.path}"
    keys = list(_chunk_keys(source, array, roi))
    allow_missing = os.environ.get(ALLOW_MISSING_CHUNKS, "") not in ("", "0")
    for key, _ in keys:
        if not allow_missing and key not in source.store:
            raise IncasemError(
                f"{name}: chunk {key.rsplit('/', 1)[-1]} is missing (zarr would read it as "
                "zeros; the copy is incomplete or damaged): restore it or convert the data "
                f"again, or set {ALLOW_MISSING_CHUNKS}=1 if its missing chunks are meant as zeros"
            )
    try:
        return array[roi]
    except Exception as error:  # codecs raise many types
        for key, index in keys:
            try:
                source.blocks[index]
            except Exception as e:
                first = (str(e).strip().splitlines() or [""])[0]
                raise IncasemError(
                    f"{name}: chunk {key.rsplit('/', 1)[-1]} cannot be read "
                    f"({type(e).__name__}: {first}); the file is damaged: restore it or convert "
                    "the data again"
                ) from None
        raise error
