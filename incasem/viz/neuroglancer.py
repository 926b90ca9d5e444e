"""Look at volumes in neuroglancer: a local viewer, served from this Python process.

The original viewed data through a lab fork of a neuroglancer script. We use the ``neuroglancer``
PyPI package and serve every dataset as a ``LocalVolume``, so no static file server, CORS setup
or format conversion is needed: the browser asks this process for chunks, which reads them from
zarr lazily. The server binds to 127.0.0.1 only (data stays on the machine; reach it from
elsewhere with ``ssh -L``).

Each layer's placement is written into the viewer state explicitly, as the layer source's
coordinate transform: output dimensions z, y, x in nm with the dataset's voxel size, and a
translation of the dataset's offset in voxels. The state JSON therefore says where every layer
sits (and can be checked without a browser), and datasets with different voxel sizes or offsets
overlay correctly. Raw and probabilities become image layers, labels, segmentations and
instance ids segmentation layers; annotated ROIs of a data config become boxes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from incasem.atomic import write_atomic
from incasem.errors import IncasemError
from incasem.io import open_array

#: Datasets whose path matches this are shown as segmentation layers (ids, not intensities).
SEGMENTATION_PATTERN = re.compile(r"(labels|segmentation|instances|masks?)(/|$)|/mask", re.I)

AXES = ("z", "y", "x")


@dataclass(frozen=True)
class LayerSpec:
    """How one dataset is shown.

    Attributes:
        dataset: path inside the container.
        name: layer name.
        kind: ``image`` or ``segmentation``.
        voxel_size: nm (z, y, x).
        offset_voxels: dataset start in voxels of its own voxel size (z, y, x).
        shape: voxels (z, y, x).
        channels: channels before the spatial axes (0 for a plain 3D dataset).
    """

    dataset: str
    name: str
    kind: str
    voxel_size: tuple[int, int, int]
    offset_voxels: tuple[int, int, int]
    shape: tuple[int, int, int]
    channels: int


def layer_kind(dataset: str, dtype: np.dtype) -> str:
    """``segmentation`` for label-like datasets (by path, or integer data wider than 8 bits such
    as instance ids), else ``image`` (raw, probabilities, float data)."""
    if "prob" in dataset.lower() or np.dtype(dtype).kind == "f":
        return "image"
    if SEGMENTATION_PATTERN.search(dataset):
        return "segmentation"
    if np.dtype(dtype).kind in "iu" and np.dtype(dtype).itemsize > 1:
        return "segmentation"
    return "image"


def layer_spec(container: str | os.PathLike, dataset: str, kind: str | None = None) -> LayerSpec:
    """Describe ``container/dataset`` as a layer; ``kind`` overrides `layer_kind`.

    Raises `IncasemError` (from `open_array`) naming the dataset if it cannot be opened.
    """
    array = open_array(container, dataset)
    voxel_size = tuple(int(v) for v in array.voxel_size)
    if len(voxel_size) != 3:
        raise IncasemError(f"{container}/{dataset}: {len(voxel_size)} spatial axes, expected 3")
    offset = tuple(int(o) for o in array.roi.begin / array.voxel_size)
    shape = tuple(int(s) for s in array.roi.shape / array.voxel_size)
    channels = int(np.prod(array.shape[:-3])) if len(array.shape) > 3 else 0
    return LayerSpec(
        dataset=dataset,
        name=dataset.strip("/").removeprefix("volumes/"),
        kind=kind or layer_kind(dataset, array.dtype),
        voxel_size=voxel_size,
        offset_voxels=offset,
        shape=shape,
        channels=channels,
    )


def _space(voxel_size: tuple[int, ...], channels: int = 0) -> Any:
    import neuroglancer

    names = (["c^"] if channels else []) + list(AXES)
    units = ([""] if channels else []) + ["nm"] * 3
    scales = ([1] if channels else []) + list(voxel_size)
    return neuroglancer.CoordinateSpace(names=names, units=units, scales=scales)


def _source(container: Path, spec: LayerSpec) -> Any:
    import neuroglancer
    import zarr

    data = zarr.open_array(str(container), mode="r", path=spec.dataset)
    if spec.channels and data.ndim > 4:
        raise IncasemError(f"{container}/{spec.dataset}: more than one channel axis")
    volume = neuroglancer.LocalVolume(
        data=data,
        dimensions=_space(spec.voxel_size, spec.channels),
        volume_type=spec.kind,
    )
    rank = 4 if spec.channels else 3
    matrix = np.zeros((rank, rank + 1))
    matrix[:, :rank] = np.eye(rank)
    matrix[rank - 3 :, rank] = spec.offset_voxels
    transform = neuroglancer.CoordinateSpaceTransform(
        output_dimensions=_space(spec.voxel_size, spec.channels), matrix=matrix
    )
    return neuroglancer.LayerDataSource(url=volume, transform=transform)


def roi_boxes(
    data_config: str | os.PathLike, container: str | os.PathLike, data_root=None
) -> list[tuple[str, list[float], list[float]]]:
    """(entry name, start nm, end nm), z y x, of every entry of ``data_config`` whose file is
    ``container`` (relative files are joined to ``data_root``, default the config's folder)."""
    from incasem.io.data_config import load_data_config

    root = Path(data_root) if data_root else Path(data_config).resolve().parent
    config = load_data_config(str(data_config), data_root=root)
    target = Path(container).resolve()
    boxes = []
    for entry in config.entries:
        if entry.path(root).resolve() != target:
            continue
        start = [o * v for o, v in zip(entry.offset, entry.voxel_size, strict=True)]
        end = [s + n * v for s, n, v in zip(start, entry.shape, entry.voxel_size, strict=True)]
        boxes.append((entry.name, [float(s) for s in start], [float(e) for e in end]))
    if not boxes:
        raise IncasemError(f"{data_config}: no entry refers to {container} (data root {root})")
    return boxes


def build_viewer(
    container: str | os.PathLike,
    datasets: list[str],
    rois: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    bind_address: str = "127.0.0.1",
    port: int = 0,
) -> Any:
    """A `neuroglancer.Viewer` showing ``datasets`` of ``container`` (and ROI boxes).

    Args:
        container: the zarr container.
        datasets: paths inside it, e.g. ``volumes/raw volumes/labels/mito``; the first one's
            voxel size sets the display dimensions and its centre the initial position.
        rois: a data-config JSON whose entries in this container are drawn as boxes.
        data_root: folder that relative files of ``rois`` are joined to.
        bind_address: server address; keep 127.0.0.1 unless the network is trusted.
        port: server port (0: any free one).

    Raises `IncasemError` naming a dataset that cannot be opened.
    """
    import neuroglancer

    container = Path(container)
    if not datasets:
        raise IncasemError("no datasets given (-d volumes/raw ...)")
    specs = [layer_spec(container, dataset) for dataset in datasets]
    boxes = roi_boxes(rois, container, data_root) if rois else []
    neuroglancer.set_server_bind_address(bind_address, port)
    viewer = neuroglancer.Viewer()
    first = specs[0]
    with viewer.txn() as state:
        state.dimensions = _space(first.voxel_size)
        state.position = [o + s / 2 for o, s in zip(first.offset_voxels, first.shape, strict=True)]
        state.layout = "4panel"
        for spec in specs:
            source = _source(container, spec)
            if spec.kind == "segmentation":
                state.layers[spec.name] = neuroglancer.SegmentationLayer(source=source)
            else:
                state.layers[spec.name] = neuroglancer.ImageLayer(source=source)
        if boxes:
            layer = neuroglancer.LocalAnnotationLayer(dimensions=_space((1, 1, 1)))
            for name, start, end in boxes:
                layer.annotations.append(
                    neuroglancer.AxisAlignedBoundingBoxAnnotation(
                        id=name, point_a=start, point_b=end, description=name
                    )
                )
            state.layers["rois"] = layer
    return viewer


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def screenshot(viewer: Any, out: str | os.PathLike, size: tuple[int, int] = (1200, 900)) -> Path:
    """Save a PNG of the viewer as rendered by headless Chromium (software WebGL).

    Uses neuroglancer's own webdriver (selenium): the browser is driven until every visible
    chunk has loaded, then the canvas is captured, which a fixed wait cannot guarantee. Needs
    Chromium and its chromedriver (Debian: ``apt-get install chromium chromium-driver``).
    ``size`` is (width, height) in pixels. Written to a temporary file and renamed. Raises
    `IncasemError` if no Chromium is found.
    """
    import neuroglancer.webdriver

    browser = find_chromium()
    if browser is None:
        raise IncasemError(
            "--screenshot needs Chromium and chromedriver "
            "(apt-get install chromium chromium-driver)"
        )
    # No network lookups by selenium's driver manager: use the local chromedriver.
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with neuroglancer.webdriver.Webdriver(
            viewer,
            headless=True,
            browser_binary_path=browser,
            docker=True,
            print_logs=False,
            extra_command_line_args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        ):
            image = viewer.screenshot(size=list(size)).screenshot.image
    except Exception as e:  # selenium raises its own types for a missing driver or a crash
        raise IncasemError(f"screenshot with {browser} failed: {type(e).__name__}: {e}") from None
    return write_atomic(out, lambda tmp: tmp.write_bytes(image))
