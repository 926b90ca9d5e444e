"""Data layer: arrays with voxel size and offset, ROIs, data configs, the synthetic cell.

Everything downstream (pipelines, prediction, post-processing) reads and writes through this
package, so the metadata contract (nm, z, y, x, ``resolution`` and ``voxel_size`` both written)
is kept in one place.
"""

from incasem.atomic import atomic_folder as atomic_container  # a container is a folder
from incasem.io.arrays import (
    carried_voxel_size_attrs,
    create_array,
    default_chunks,
    list_datasets,
    open_array,
    physical_voxel_size,
)
from incasem.io.metadata import (
    PhysicalVoxelSize,
    SpatialMetadata,
    read_spatial_metadata,
    spatial_attributes,
)
from incasem.io.roi import format_roi_nm, format_roi_voxels, roi_from_voxels, roi_to_voxels

__all__ = [
    "PhysicalVoxelSize",
    "SpatialMetadata",
    "carried_voxel_size_attrs",
    "atomic_container",
    "create_array",
    "default_chunks",
    "format_roi_nm",
    "format_roi_voxels",
    "list_datasets",
    "open_array",
    "physical_voxel_size",
    "read_spatial_metadata",
    "roi_from_voxels",
    "roi_to_voxels",
    "spatial_attributes",
]
