"""Connected components over a whole volume, computed block by block with consistent ids.

Labelling each block alone splits every object that crosses a block face. We therefore run three
blockwise passes and one small global step:

1. **Label pieces.** Each block labels its foreground with ``scipy.ndimage.label`` (6-connected:
   voxels sharing a face) and writes every piece under a *provisional id*: one plus the global
   raster index (z, y, x order over the whole volume) of the piece's first voxel. Raster order
   inside a block is the global raster order restricted to it, so the first voxel in the block
   is the piece's first voxel overall. Ids are thus unique and independent of which worker ran
   which block, and each block saves its pieces' ids and sizes.
2. **Face pairs.** Each block reads the two voxel layers on either side of its upper z, y and x
   faces and saves the pairs of provisional ids that touch across them.
3. **Union.** The driver joins pieces linked by a pair with
   ``scipy.sparse.csgraph.connected_components`` (a graph library instead of a hand-written
   union-find), sums piece sizes per object, applies the size filter and numbers the kept
   objects 1..N in the raster order of their first voxel. That is exactly the order of
   ``scipy.ndimage.label`` on the whole volume, so without a size filter the result equals it
   voxel for voxel, whatever the block shape.
4. **Relabel.** Each block maps its provisional ids to final ids (0 for filtered objects) and
   writes the uint64 instance dataset.
5. **Optional split of touching objects.** A seeded watershed on each object's distance
   transform (seeds: h-maxima, so only necks markedly thinner than both sides split) runs per
   whole object inside its bounding box, never per block, so its result cannot depend on the
   block layout. We chose it over waterz agglomeration because it needs no boundary
   predictions, only the binary objects that a single-organelle network gives.

Only the per-piece table (ids and sizes) and the face pairs go through the driver's memory; a
volume with millions of pieces needs tens of MB there. Sizes are in voxels, axis order z, y, x.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi

from incasem.blockwise import BLOCK_EDGE, run_in_blocks
from incasem.errors import IncasemError
from incasem.io import create_array, default_chunks, open_array, physical_voxel_size
from incasem.io.metadata import exact_voxel_size_attrs
from incasem.io.staging import check_new_dataset, staged_dataset
from incasem.postprocess.partials import load_parts, save_part, scratch_folder
from incasem.postprocess.sources import BinarySource

#: Largest bounding box (voxels) of an object that the watershed split loads (about 2 GB).
DEFAULT_SPLIT_MAX_VOXELS = 512**3 // 2


@dataclass(frozen=True)
class ComponentsResult:
    """What `connected_components` wrote.

    Attributes:
        dataset: ``container/dataset`` of the uint64 instance dataset.
        num_objects: number of objects kept (ids 1..num_objects).
        sizes: voxels per object, indexed by id (``sizes[0]`` is 0).
        removed: objects dropped by the size filter.
        too_large_to_split: objects left whole by the watershed split because of their size.
    """

    dataset: str
    num_objects: int
    sizes: np.ndarray
    removed: int
    too_large_to_split: int = 0


@dataclass(frozen=True)
class _LabelPieces:
    source: BinarySource
    container: str
    provisional: str
    parts: str
    volume_offset: tuple[int, ...]
    volume_shape: tuple[int, ...]
    voxel_size: tuple[int, ...]

    def __call__(self, block: Any) -> None:
        from scipy import ndimage

        roi = block.write_roi
        foreground = self.source.read(roi)
        pieces, count = ndimage.label(foreground)
        ids = np.zeros(0, np.uint64)
        sizes = np.zeros(0, np.int64)
        boxes = np.zeros((0, 6), np.int64)
        if count:
            found, first = np.unique(pieces.ravel(), return_index=True)
            first = first[found > 0]
            local = np.unravel_index(first, pieces.shape)
            start = (Coordinate(roi.offset) - Coordinate(self.volume_offset)) / Coordinate(
                self.voxel_size
            )
            index = tuple(c + o for c, o in zip(local, start, strict=True))
            ids = np.ravel_multi_index(index, self.volume_shape).astype(np.uint64) + np.uint64(1)
            sizes = np.bincount(pieces.ravel(), minlength=count + 1)[1:].astype(np.int64)
            lookup = np.concatenate([np.zeros(1, np.uint64), ids])
            out = open_array(self.container, self.provisional, "r+")
            out[roi] = lookup[pieces]
            boxes = np.array(
                [
                    [s.start + o for s, o in zip(box, start, strict=True)]
                    + [s.stop + o for s, o in zip(box, start, strict=True)]
                    for box in ndimage.find_objects(pieces)
                ],
                np.int64,
            )
        save_part(self.parts, roi, ids=ids, sizes=sizes, boxes=boxes)


@dataclass(frozen=True)
class _FacePairs:
    container: str
    provisional: str
    parts: str

    def __call__(self, block: Any) -> None:
        labels = open_array(self.container, self.provisional)
        voxel_size = labels.voxel_size
        roi = block.write_roi
        found = [np.zeros((0, 2), np.uint64)]
        for axis in range(3):
            end = roi.end[axis]
            if end >= labels.roi.end[axis]:
                continue
            offset = list(roi.offset)
            shape = list(roi.shape)
            offset[axis] = end - voxel_size[axis]
            shape[axis] = 2 * voxel_size[axis]
            layers = labels[Roi(offset, shape)]
            below = np.take(layers, 0, axis=axis).ravel()
            above = np.take(layers, 1, axis=axis).ravel()
            touching = (below != 0) & (above != 0) & (below != above)
            found.append(np.stack([below[touching], above[touching]], axis=1))
        pairs = np.unique(np.concatenate(found), axis=0)
        save_part(self.parts, roi, pairs=pairs)


@lru_cache(maxsize=4)
def _load_mapping(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["pieces"], data["final"]


@dataclass(frozen=True)
class _Relabel:
    container: str
    provisional: str
    mapping: str
    out_container: str
    out_dataset: str

    def __call__(self, block: Any) -> None:
        roi = block.write_roi
        provisional = open_array(self.container, self.provisional)[roi]
        nonzero = provisional != 0
        if not nonzero.any():
            return
        pieces, final = _load_mapping(self.mapping)
        result = np.zeros(provisional.shape, np.uint64)
        result[nonzero] = final[np.searchsorted(pieces, provisional[nonzero])]
        open_array(self.out_container, self.out_dataset, "r+")[roi] = result


def _union(
    parts: list[dict[str, np.ndarray]], pairs: list[dict[str, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pieces (sorted ids), each piece's object index, and per object its first piece id, its
    size (voxels) and its bounding box (voxels: begin z, y, x, end z, y, x)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as graph_components

    ids = np.concatenate([p["ids"] for p in parts]) if parts else np.zeros(0, np.uint64)
    sizes = np.concatenate([p["sizes"] for p in parts]) if parts else np.zeros(0, np.int64)
    boxes = np.concatenate([p["boxes"] for p in parts]) if parts else np.zeros((0, 6), np.int64)
    order = np.argsort(ids, kind="stable")
    ids, sizes, boxes = ids[order], sizes[order], boxes[order]
    edges = np.concatenate([p["pairs"] for p in pairs]) if pairs else np.zeros((0, 2), np.uint64)
    a, b = np.searchsorted(ids, edges[:, 0]), np.searchsorted(ids, edges[:, 1])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(ids), len(ids)))
    _, component = graph_components(graph, directed=False)
    # Pieces are sorted by id, so a component's first occurrence is its smallest id (first voxel).
    _, first, inverse = np.unique(component, return_index=True, return_inverse=True)
    object_sizes = np.zeros(len(first), np.int64)
    np.add.at(object_sizes, inverse, sizes)
    object_boxes = np.concatenate(
        [np.full((len(first), 3), np.iinfo(np.int64).max), np.zeros((len(first), 3), np.int64)],
        axis=1,
    )
    np.minimum.at(object_boxes[:, :3], inverse, boxes[:, :3])
    np.maximum.at(object_boxes[:, 3:], inverse, boxes[:, 3:])
    return ids, inverse, ids[first], object_sizes, object_boxes


def _split_touching(
    array: Any,
    boxes: np.ndarray,
    depth_nm: float,
    sampling: Sequence[float],
    max_box_voxels: int,
    progress: bool,
) -> tuple[dict[int, int], int, int]:
    """Split objects 1..N of ``array`` (in place) with a seeded watershed; new ids follow N.

    Seeds are the h-maxima of depth ``depth_nm`` of the object's distance transform (nm, with
    ``sampling``, the physical voxel size in nm, z, y, x): two parts become separate objects only if
    the neck between them is at least ``depth_nm`` thinner than both parts. Objects whose bounding
    box exceeds ``max_box_voxels`` are left whole. Returns the new sizes (voxels) of the split
    objects' parts by id, the number of objects afterwards, and how many objects were too large to
    try.
    """
    from scipy import ndimage
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed
    from tqdm import tqdm

    voxel_size = array.voxel_size
    origin = array.roi.offset
    next_id = len(boxes) + 1
    skipped = 0
    sizes: dict[int, int] = {}
    for object_id, box in enumerate(tqdm(boxes, desc="split", disable=not progress), start=1):
        begin, end = Coordinate(box[:3]), Coordinate(box[3:])
        if math.prod(end - begin) > max_box_voxels:
            skipped += 1
            continue
        roi = Roi(origin + begin * voxel_size, (end - begin) * voxel_size)
        region = array[roi]
        mask = np.pad(region == object_id, 1)
        distance = ndimage.distance_transform_edt(mask, sampling=tuple(sampling))
        markers, count = ndimage.label(h_maxima(distance, depth_nm))
        if count < 2:
            continue
        parts = watershed(-distance, markers, mask=mask)[1:-1, 1:-1, 1:-1]
        new_ids = np.concatenate([[0, object_id], np.arange(next_id, next_id + count - 1)]).astype(
            np.uint64
        )
        array[roi] = np.where(region == object_id, new_ids[parts], region)
        for part, size in enumerate(np.bincount(parts.ravel(), minlength=count + 1)[1:], 1):
            sizes[int(new_ids[part])] = int(size)
        next_id += count - 1
    return sizes, next_id - 1, skipped


def _check_options(
    size_unit: str, split_depth_nm: float | None, min_size: float | None, max_size: float | None
) -> None:
    if size_unit not in ("voxels", "nm3"):
        raise IncasemError(f"size unit '{size_unit}' must be 'voxels' or 'nm3'")
    if split_depth_nm is not None and split_depth_nm <= 0:
        raise IncasemError(f"--split-depth {split_depth_nm} nm must be positive")
    if min_size is not None and max_size is not None and min_size > max_size:
        raise IncasemError(f"--min-size {min_size} is larger than --max-size {max_size}")


def _kept_objects(
    first_ids: np.ndarray, volume: np.ndarray, min_size: float | None, max_size: float | None
) -> np.ndarray:
    """Indices of the objects within the size limits, in the raster order of their first voxel
    (which numbers them 1..N)."""
    keep = np.ones(len(volume), bool)
    if min_size is not None:
        keep &= volume >= min_size
    if max_size is not None:
        keep &= volume <= max_size
    kept = np.flatnonzero(keep)
    return kept[np.argsort(first_ids[kept], kind="stable")]


def _split_staged(
    staged: Any,
    out_container: str | os.PathLike,
    boxes: np.ndarray,
    sizes: np.ndarray,
    attrs: dict[str, Any],
    split_depth_nm: float,
    sampling: Sequence[float],
    split_max_voxels: int,
    progress: bool,
) -> tuple[int, np.ndarray, int]:
    """Split touching objects of the staged output (`_split_touching`); returns the object
    count, the sizes (index = id, voxels) with the new objects, and how many were too large."""
    kept = len(sizes) - 1
    changed, num_objects, too_large = _split_touching(
        staged.array, boxes, split_depth_nm, sampling, split_max_voxels, progress
    )
    sizes = np.concatenate([sizes, np.zeros(num_objects + 1 - len(sizes), np.int64)])
    for object_id, size in changed.items():
        sizes[object_id] = size
    if num_objects != kept:
        written = zarr.open(str(out_container), mode="r+", path=staged.staging_name)
        record = {**attrs["incasem_instances"], "num_objects": num_objects}
        written.attrs["incasem_instances"] = record
    return num_objects, sizes, too_large


def _label_pieces(
    source: BinarySource,
    scratch: Path,
    roi: Roi,
    chunks: Sequence[int],
    common: dict[str, Any],
) -> str:
    """Passes 1 and 2: provisional ids per block (``provisional`` in a scratch container, one
    record per piece under ``pieces/``) and the pairs of ids that touch across block faces
    (``pairs/``). Returns the scratch container's path."""
    voxel_size = common["voxel_size"]
    shape = roi.shape / voxel_size
    scratch_container = str(scratch / "scratch.zarr")
    provisional = create_array(
        scratch_container, "provisional", shape, voxel_size, roi.offset, np.uint64, chunks
    )
    (scratch / "pieces").mkdir()
    (scratch / "pairs").mkdir()
    run_in_blocks(
        _LabelPieces(
            source,
            scratch_container,
            "provisional",
            str(scratch / "pieces"),
            tuple(roi.offset),
            tuple(shape),
            tuple(voxel_size),
        ),
        roi,
        None,
        output=provisional,
        name="instances-label",
        **common,
    )
    run_in_blocks(
        _FacePairs(scratch_container, "provisional", str(scratch / "pairs")),
        roi,
        None,
        name="instances-faces",
        **common,
    )
    return scratch_container


def connected_components(
    source: BinarySource,
    out_container: str | os.PathLike,
    out_dataset: str,
    *,
    min_size: float | None = None,
    max_size: float | None = None,
    size_unit: str = "voxels",
    split_depth_nm: float | None = None,
    split_max_voxels: int = DEFAULT_SPLIT_MAX_VOXELS,
    block_edge: int = BLOCK_EDGE,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> ComponentsResult:
    """Label the 6-connected objects of ``source`` over its whole ROI into a uint64 dataset.

    Args:
        source: the foreground (probabilities above a threshold, or labels; masks applied).
        out_container: zarr container of the output (created if missing).
        out_dataset: the instance dataset: 0 background, objects 1..N numbered in the raster
            order (z, y, x) of their first voxel; same ROI and voxel size as ``source``.
        min_size: drop objects smaller than this (in ``size_unit``); None keeps all.
        max_size: drop objects larger than this (in ``size_unit``); None keeps all.
        size_unit: ``"voxels"`` or ``"nm3"`` (volume in cubic nm, with the exact voxel size
            where the source records one).
        split_depth_nm: if given, split touching objects by a seeded watershed of each object's
            distance transform (nm); seeds are its h-maxima of this depth, so parts joined by a
            neck at least this much thinner (in radius) than both become separate objects, with
            ids after N. Applied after the size filter, per whole object (exact, independent of
            blocks), serially in this process.
        split_max_voxels: objects whose bounding box holds more voxels are not split (memory).
        block_edge: write block edge in voxels (rounded up to a multiple of the chunks).
        num_workers: worker processes (0: every block in this process).
        overwrite: replace an existing output (only once the new one is complete).
        progress: show progress bars.
    """
    roi, voxel_size = source.check()
    _check_options(size_unit, split_depth_nm, min_size, max_size)
    check_new_dataset(out_container, out_dataset, overwrite)
    physical = physical_voxel_size(source.data.container, source.data.dataset)
    per_voxel = math.prod(physical.nm) if size_unit == "nm3" else 1
    shape = roi.shape / voxel_size
    chunks = default_chunks(shape)
    with scratch_folder(out_container, prefix=".incasem-instances-") as scratch:
        # every pass cuts the same blocks: the chunks' (the same for all outputs) by block_edge
        common = {
            "voxel_size": voxel_size,
            "block_edge": block_edge,
            "num_workers": num_workers,
            "progress": progress,
        }
        scratch_container = _label_pieces(source, scratch, roi, chunks, common)
        pieces, piece_object, first_ids, sizes, boxes = _union(
            load_parts(scratch / "pieces"), load_parts(scratch / "pairs")
        )
        kept = _kept_objects(first_ids, sizes * per_voxel, min_size, max_size)
        object_final = np.zeros(len(sizes), np.uint64)
        object_final[kept] = np.arange(1, len(kept) + 1, dtype=np.uint64)
        mapping = scratch / "mapping.npz"
        np.savez(mapping, pieces=pieces, final=object_final[piece_object])
        attrs = {
            "incasem_instances": {
                **source.describe(),
                "connectivity": "6 (faces)",
                "min_size": min_size,
                "max_size": max_size,
                "size_unit": size_unit,
                "split_depth_nm": split_depth_nm,
                "num_objects": len(kept),
            }
        } | exact_voxel_size_attrs(physical)
        with staged_dataset(
            out_container,
            out_dataset,
            shape,
            voxel_size,
            roi.offset,
            np.uint64,
            chunks,
            overwrite=overwrite,
            attrs=attrs,
        ) as staged:
            run_in_blocks(
                _Relabel(
                    scratch_container,
                    "provisional",
                    str(mapping),
                    str(out_container),
                    staged.staging_name,
                ),
                roi,
                None,
                output=staged.array,
                name="instances-relabel",
                **common,
            )
            num_objects, final_sizes = len(kept), np.concatenate([[0], sizes[kept]])
            too_large = 0
            if split_depth_nm is not None:
                num_objects, final_sizes, too_large = _split_staged(
                    staged, out_container, boxes[kept], final_sizes, attrs,
                    split_depth_nm, physical.nm, split_max_voxels, progress,
                )  # fmt: skip
    return ComponentsResult(
        dataset=f"{Path(out_container)}/{out_dataset}",
        num_objects=num_objects,
        sizes=final_sizes,
        removed=len(sizes) - len(kept),
        too_large_to_split=too_large,
    )
