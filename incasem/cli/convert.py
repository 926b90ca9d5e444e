"""``incasem convert``: bring volumes into zarr (TIFF/PNG stacks, HDF5, N5, OME-Zarr) and out
again as TIFF stacks. Thin shells over `incasem.prepare`; the shared options live here too."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from incasem.cli.common import add_run_arguments
from incasem.errors import IncasemError

UNITS = "Sizes are in voxels and voxel sizes in nm, axis order z y x."


def _add_import_arguments(parser: argparse.ArgumentParser, resolution_required: bool) -> None:
    parser.add_argument("-o", "--output", required=True, help="zarr container to write to")
    parser.add_argument(
        "--resolution",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        required=resolution_required,
        help="voxel size in nm (z y x); decimals are recorded exactly in the attribute "
        "voxel_size_exact_nm and rounded to whole nm for computing"
        + ("" if resolution_required else "; default: from the input's metadata"),
    )
    parser.add_argument(
        "--offset",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="position of the first voxel in voxels (z y x), stored as nm (voxels x resolution)"
        + ("; default 0" if resolution_required else "; default: from the metadata, else 0"),
    )
    parser.add_argument(
        "--dtype",
        nargs="+",
        help="output dtype (e.g. uint8, uint32), one for all inputs or one per input; default: "
        "the input's. uint16 -> uint8 divides by 256; other narrowing is checked, never wrapped",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="chunk shape in voxels (default: 64 per axis, less for smaller volumes)",
    )
    parser.add_argument(
        "--invert",
        action="store_true",
        help="store max - value (e.g. 255 - v for uint8) for every input; convert raw and "
        "labels in separate calls if only the raw data must be inverted",
    )
    parser.add_argument(
        "--block-mb",
        type=float,
        default=256,
        help="largest block one worker reads and writes, in MB (default: 256); peak memory per "
        "worker is about this plus one decoded slice",
    )
    add_run_arguments(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert TIFF/PNG stacks, HDF5, N5 and OME-Zarr to zarr, and zarr to TIFF stacks",
        description="Convert volumes between formats, blockwise (memory stays at a few blocks "
        f"per worker, whatever the volume's size). {UNITS}",
    )
    conversions = parser.add_subparsers(dest="conversion", metavar="CONVERSION", required=True)
    _register_tiff_to_zarr(conversions)
    _register_h5_to_zarr(conversions)
    _register_n5_to_zarr(conversions)
    _register_zarr_to_tiff(conversions)


def _register_tiff_to_zarr(conversions: argparse._SubParsersAction) -> None:
    tiff = conversions.add_parser(
        "tiff-to-zarr",
        help="directories of 2D TIFF/PNG slices (or multi-page TIFFs) -> zarr datasets",
        description="Import image stacks: each INPUT is a directory of 2D .tif/.tiff/.png slices "
        "or one multi-page TIFF, and becomes one dataset (raw, labels, ...). Slices are ordered "
        "by the number --regex captures in the file name (s_2.tif before s_10.tif); numbers must "
        "be consecutive and all slices of one input the same size and dtype, otherwise nothing is "
        f"written. {UNITS}",
    )
    tiff.add_argument("inputs", nargs="+", metavar="INPUT", help="slice directory or TIFF file")
    tiff.add_argument(
        "-d",
        "--dataset",
        nargs="+",
        required=True,
        help="output dataset per INPUT, in the same order (e.g. volumes/raw volumes/labels/mito)",
    )
    tiff.add_argument(
        "--regex",
        default=None,
        help="regular expression whose first group captures the section number in a file name "
        r"(default: '(\d+)\.(?:tiff?|png)$', the digits before the extension); files that do not "
        "match are ignored",
    )
    tiff.add_argument(
        "--rgb",
        choices=("gray", "id"),
        help="RGB slices: 'gray' = luminance (gray images saved as RGB), 'id' = VAST segment ids "
        "R*65536+G*256+B (uint32)",
    )
    _add_import_arguments(tiff, resolution_required=True)
    tiff.set_defaults(func=run_tiff_to_zarr)


def _register_h5_to_zarr(conversions: argparse._SubParsersAction) -> None:
    h5 = conversions.add_parser(
        "h5-to-zarr",
        help="an HDF5 dataset (e.g. an ilastik export) -> a zarr dataset",
        description="Import one HDF5 dataset. The axis order comes from ilastik's 'axistags' "
        f"attribute, else zyx (3D) or zyxc (4D), else --axes. {UNITS}",
    )
    h5.add_argument("input", help="the .h5 file")
    h5.add_argument(
        "--h5-dataset", default="exported_data", help="dataset in the file (default: ilastik's)"
    )
    h5.add_argument("--axes", help="axis letters of the HDF5 dataset, e.g. zyxc or czyx")
    h5.add_argument("--channel", type=int, help="entry to take from a channel axis longer than 1")
    h5.add_argument("-d", "--dataset", required=True, help="output dataset, e.g. volumes/labels/er")
    _add_import_arguments(h5, resolution_required=True)
    h5.set_defaults(func=run_h5_to_zarr)


def _register_n5_to_zarr(conversions: argparse._SubParsersAction) -> None:
    n5 = conversions.add_parser(
        "n5-to-zarr",
        aliases=["ome-zarr-to-zarr"],
        help="an N5 / OME-Zarr array or multiscale level (e.g. OpenOrganelle) -> a zarr dataset",
        description="Import one array of an N5 or OME-Zarr container (e.g. OpenOrganelle's "
        "em/fibsem-uint8) with its voxel size and offset, read from OME-NGFF "
        "coordinateTransformations, COSEM 'transform', 'pixelResolution' or "
        "'resolution'/'offset' attributes (N5's reversed order is handled). Fractional voxel "
        f"sizes are refused: pass --resolution (and --offset) to state what to record. {UNITS}",
    )
    n5.add_argument("input", help="the .n5 or .zarr container")
    n5.add_argument(
        "--source-dataset",
        default="",
        help="array or multiscale group inside the input, e.g. em/fibsem-uint8 (default: root)",
    )
    n5.add_argument(
        "--scale",
        help="level of a multiscale group: its path (s1) or index (1); default: the finest",
    )
    n5.add_argument("--channel", type=int, help="entry to take from a channel axis longer than 1")
    n5.add_argument("-d", "--dataset", required=True, help="output dataset, e.g. volumes/raw")
    _add_import_arguments(n5, resolution_required=False)
    n5.set_defaults(func=run_n5_to_zarr)


def _register_zarr_to_tiff(conversions: argparse._SubParsersAction) -> None:
    out = conversions.add_parser(
        "zarr-to-tiff",
        help="a zarr dataset -> a directory of 2D TIFFs (section_0000.tif, ...)",
        description="Export every z section of a dataset as an uncompressed 2D TIFF, numbered "
        "by world z in voxels (z offset / z voxel size + index: section_0020.tif ... for a crop "
        "starting at section 20; more digits if needed). Values are written unchanged: "
        "uint8/uint16/uint32 ids and float32 probabilities keep their dtype (ImageJ metadata with "
        "the voxel size in nm for uint8, uint16 and float32). Booleans become 0/255. "
        f"{UNITS}",
    )
    out.add_argument("container", help="the .zarr (or .n5) container")
    out.add_argument("-d", "--dataset", required=True, help="dataset to export")
    out.add_argument("-o", "--output", required=True, help="directory to create for the TIFFs")
    out.add_argument("--channel", type=int, help="channel of a dataset with a channel axis")
    conversion = out.add_mutually_exclusive_group()
    conversion.add_argument(
        "--binarize", action="store_true", help="write 255 where nonzero, else 0 (uint8)"
    )
    conversion.add_argument(
        "--float-to-uint8",
        action="store_true",
        help="write float probabilities in [0, 1] as round(255 p) (uint8); other values are "
        "refused",
    )
    out.add_argument(
        "--block-mb", type=float, default=256, help="largest block per worker, MB (default: 256)"
    )
    add_run_arguments(out)
    out.set_defaults(func=run_zarr_to_tiff)


def _per_input(values: list[str] | None, count: int, option: str) -> list[str | None]:
    if not values:
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise IncasemError(
            f"{option}: give one value or one per input ({count}), not {len(values)}"
        )
    return values


def _voxel_grid(resolution: Sequence[float], where: str) -> tuple[list[int], list[float] | None]:
    """The whole-nm voxel size incasem computes on and, if rounding changed it, the exact one
    (said in one line: the user should know that 5.9 nm sections are handled as 6 nm)."""
    if any(not r > 0 for r in resolution):
        raise IncasemError(f"{where}: voxel size {list(resolution)} nm must be positive")
    grid = [max(1, math.floor(r + 0.5)) for r in resolution]
    if all(math.isclose(r, g, abs_tol=1e-6) for r, g in zip(resolution, grid, strict=True)):
        return grid, None
    exact = [float(r) for r in resolution]
    print(
        f"{where}: voxel size {exact} nm is recorded as {grid} nm (incasem computes on whole "
        "nm); the exact value is kept in the attribute voxel_size_exact_nm"
    )
    return grid, exact


def _offset_nm(offset_voxels: list[int] | None, resolution: list[int]) -> list[int] | None:
    if offset_voxels is None:
        return None
    return [o * r for o, r in zip(offset_voxels, resolution, strict=True)]


def _import(args: argparse.Namespace, sources: list, datasets: list[str]) -> None:
    from incasem.io.staging import check_new_dataset
    from incasem.prepare.convert import import_volume

    dtypes = _per_input(args.dtype, len(sources), "--dtype")
    for dataset in datasets:
        check_new_dataset(args.output, dataset, args.overwrite)
    voxel_size, exact = _voxel_grid(args.resolution, sources[0].name)
    for source, dataset, dtype in zip(sources, datasets, dtypes, strict=True):
        path = import_volume(
            source,
            args.output,
            dataset,
            voxel_size=voxel_size,
            exact_voxel_size=exact,
            offset=_offset_nm(args.offset, voxel_size),
            dtype=dtype,
            chunks=args.chunks,
            invert=args.invert,
            num_workers=args.workers,
            overwrite=args.overwrite,
            max_block_mb=args.block_mb,
        )
        shape = " x ".join(str(s) for s in source.shape)
        print(f"wrote {path}: {shape} voxels (z y x) at {voxel_size} nm from {source.name}")


def run_tiff_to_zarr(args: argparse.Namespace) -> int:
    from incasem.prepare.stacks import DEFAULT_SLICE_REGEX, open_slice_stacks

    if len(args.dataset) != len(args.inputs):
        raise IncasemError(
            f"{len(args.inputs)} inputs but {len(args.dataset)} datasets; give one -d per input"
        )
    stacks = open_slice_stacks(args.inputs, regex=args.regex or DEFAULT_SLICE_REGEX, rgb=args.rgb)
    _import(args, stacks, args.dataset)
    return 0


def run_h5_to_zarr(args: argparse.Namespace) -> int:
    from incasem.prepare.hdf5 import open_hdf5_volume

    volume = open_hdf5_volume(args.input, args.h5_dataset, axes=args.axes, channel=args.channel)
    _import(args, [volume], [args.dataset])
    return 0


def _integral(values: tuple[float, ...], what: str, option: str, where: str) -> list[int]:
    if any(not math.isclose(v, round(v), abs_tol=1e-6) for v in values):
        raise IncasemError(
            f"{where}: {what} {[round(v, 6) for v in values]} nm is not whole nm; pass {option} "
            "to choose the values to record"
        )
    return [round(v) for v in values]


def run_n5_to_zarr(args: argparse.Namespace) -> int:
    from incasem.prepare.n5_ome_zarr import open_multiscale_volume

    volume, placement = open_multiscale_volume(
        args.input, args.source_dataset, scale=args.scale, channel=args.channel
    )
    if args.resolution is None:
        if placement is None:
            raise IncasemError(f"{volume.name}: no voxel size in its metadata; pass --resolution")
        args.resolution = list(placement.voxel_size)
    if args.offset is None and placement is not None:
        offset_nm = _integral(placement.offset, "offset", "--offset (voxels)", volume.name)
        exact = [float(r) for r in args.resolution]
        # a metadata offset in exact nm is a whole number of voxels of the exact size
        voxels = [o / r for o, r in zip(offset_nm, exact, strict=True)]
        if any(not math.isclose(v, round(v), abs_tol=1e-6) for v in voxels):
            raise IncasemError(
                f"{volume.name}: offset {offset_nm} nm is not a multiple of the voxel size "
                f"{exact} nm; pass --offset (voxels)"
            )
        args.offset = [round(v) for v in voxels]
    _import(args, [volume], [args.dataset])
    return 0


def run_zarr_to_tiff(args: argparse.Namespace) -> int:
    from incasem.prepare.tiff_export import export_tiff_stack

    count = export_tiff_stack(
        args.container,
        args.dataset,
        args.output,
        channel=args.channel,
        binarize=args.binarize,
        float_to_uint8=args.float_to_uint8,
        num_workers=args.workers,
        overwrite=args.overwrite,
        max_block_mb=args.block_mb,
    )
    print(f"wrote {count} sections to {args.output}/")
    return 0
