"""``incasem measure``: per-object table (size, position, shape) of an instance dataset."""

from __future__ import annotations

import argparse

from incasem.cli.segment import DATASET_HELP, add_postprocess_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "measure",
        help="per-object table: volume, centroid, bbox, surface, principal axes",
        description="Write one row per object of an instance dataset (e.g. from 'incasem "
        "instances'): id, voxels, volume_nm3, centroid_{z,y,x}_nm, bbox_begin/end_{z,y,x}_nm "
        "(end exclusive), surface_area_nm2 (marching cubes of the mask smoothed by 0.7 of the "
        "finest voxel edge), "
        "axis_{major,middle,minor}_nm (full lengths of the ellipsoid with the same second "
        "moments: 2*sqrt(5*eigenvalue)), eccentricity (sqrt(1 - minor/major eigenvalue)), "
        "elongation (major/minor), sphericity and, with --probabilities, mean_probability. "
        "Lengths, areas and volumes use the exact voxel size (voxel_size_exact_nm) where the "
        "dataset records one, else the grid's; the output says which. "
        "Blockwise and exact for objects crossing blocks. Written as CSV (and Parquet beside it "
        "when pandas and pyarrow are installed). --filter 'COLUMN OP NUMBER' (OP: < <= > >= == "
        "!=; repeat to combine) keeps matching rows. " + DATASET_HELP + ".",
    )
    parser.add_argument("container", help="the .zarr container holding the datasets")
    parser.add_argument("-d", "--dataset", required=True, help="instance dataset (integer ids)")
    parser.add_argument("-o", "--output", required=True, help="CSV file to write")
    parser.add_argument("--probabilities", help="probability dataset for mean_probability")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="keep rows where EXPR holds, e.g. 'volume_nm3>1e6' (repeatable)",
    )
    parser.add_argument("--no-parquet", dest="parquet", action="store_false", help="CSV only")
    add_postprocess_arguments(parser, masks=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from incasem.atomic import check_new_file
    from incasem.postprocess.measure import (
        measure,
        measure_voxel_size,
        parse_filter,
        write_table,
    )
    from incasem.postprocess.sources import parse_dataset

    for text in args.filter:
        parse_filter(text)
    check_new_file(args.output, args.overwrite)
    instances = parse_dataset(args.dataset, args.container)
    table = measure(
        instances,
        probabilities=parse_dataset(args.probabilities, args.container)
        if args.probabilities
        else None,
        filters=args.filter,
        block_edge=args.block_size,
        num_workers=args.workers,
        progress=args.progress,
    )
    written = write_table(table, args.output, overwrite=args.overwrite, parquet=args.parquet)
    physical = measure_voxel_size(instances)
    origin = "exact, voxel_size_exact_nm" if physical.origin == "exact" else "grid"
    size = " x ".join(f"{v:g}" for v in physical.nm)
    print(f"{len(table['id'])} objects -> {', '.join(written)}")
    print(f"lengths, areas and volumes use the voxel size {size} nm ({origin})")
    return 0
