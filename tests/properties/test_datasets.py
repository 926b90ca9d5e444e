"""Datasets as other tools write them: any dtype, any shape (zero-length axes and 10^5 voxels
per axis of metadata included), any spatial metadata. Opening, reading a ROI, planning a
prediction and the preparation commands work or refuse in one line; nothing is left behind."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from funlib.geometry import Roi
from hypothesis import event, given, settings
from hypothesis import strategies as st

from incasem.io import open_array
from incasem.predict.run import plan_prediction
from incasem.predict.settings import PredictionSettings
from incasem.prepare.equalize import equalize
from incasem.prepare.masks import create_metric_mask

from ..predict.conftest import write_checkpoint
from .conftest import BOUNDED, folder, works_or_one_line

_DTYPES = st.one_of(
    st.just("uint8"),
    st.sampled_from(["uint8", "uint16", "int8", "int64", "float32", "float64", "bool"]),
)
_COORDINATE = st.one_of(
    st.lists(st.integers(-8, 12), min_size=3, max_size=3),
    st.lists(st.integers(1, 9), min_size=0, max_size=4),
    st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),
    st.text(max_size=4),
    st.none(),
)


def _write(root, dtype, shape, resolution, offset):
    """A zarr dataset with only metadata (no chunk written) and the given attributes."""
    data = zarr.open_group(str(root / "c.zarr"), mode="w").create_dataset(
        "volumes/d", shape=tuple(shape), chunks=tuple(max(1, min(s, 64)) for s in shape),
        dtype=dtype, fill_value=0,
    )  # fmt: skip
    for key, value in (("resolution", resolution), ("offset", offset)):
        if value is not None:
            data.attrs[key] = value
    return root / "c.zarr"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("model") / "m.pt", "unet2", voxel_size=(5,) * 3)


@settings(BOUNDED, max_examples=40)
@given(
    dtype=_DTYPES,
    shape=st.one_of(
        st.lists(st.sampled_from([0, 1, 3, 64, 100_000]), min_size=3, max_size=3),
        st.lists(st.sampled_from([0, 1, 3, 64, 100_000]), min_size=1, max_size=4),
    ),
    resolution=st.one_of(st.just([5, 5, 5]), st.just([50, 5, 5]), st.just([5, 5, 5]), _COORDINATE),
    offset=st.one_of(st.just([0, 0, 0]), st.just([-5, 10, 100]), st.just([0, 0, 0]), _COORDINATE),
    roi=st.one_of(
        st.just(None),
        st.lists(st.integers(-3, 100_001), min_size=6, max_size=6),
        st.lists(st.sampled_from([0, 1, 2, 3, 60]), min_size=6, max_size=6),
    ),
)
def test_any_dataset_opens_reads_and_plans_or_is_refused(
    checkpoint, dtype, shape, resolution, offset, roi
):
    with folder() as root:
        container = _write(root, dtype, shape, resolution, offset)
        array = works_or_one_line(open_array, container, "volumes/d")
        if array is None:
            event("open refused")
            return
        assert all(s > 0 for s in array.shape)
        corner = Roi(
            array.roi.offset, array.voxel_size * min(4, *array.roi.shape / array.voxel_size)
        )
        if array.voxel_size.dims == len(array.shape):
            assert array[corner].dtype == np.dtype(dtype)  # reads only the ROI's chunks
        before = sorted(p.name for p in container.rglob("*"))
        plan = works_or_one_line(
            lambda: plan_prediction(
                PredictionSettings(checkpoint=str(checkpoint), input=str(container),
                                   dataset="volumes/d", roi=roi, device="cpu", progress=False)
            )
        )  # fmt: skip
        event("planned" if plan is not None else "plan refused")
        assert plan is None or all(s > 0 for s in plan.entries[0].entry.shape)
        assert sorted(p.name for p in container.rglob("*")) == before  # planning writes nothing


@settings(BOUNDED, max_examples=20)
@given(
    dtype=_DTYPES,
    shape=st.one_of(
        st.lists(st.integers(0, 12), min_size=3, max_size=3),
        st.just([100_000] * 3),
    ),
    resolution=st.one_of(st.just([5, 5, 5]), st.just([50, 5, 5]), _COORDINATE),
    command=st.sampled_from(["equalize", "metric-mask"]),
)
def test_preparation_commands_work_or_refuse_and_leave_nothing(dtype, shape, resolution, command):
    with folder() as root:
        container = _write(root, dtype, shape, resolution, [0, 0, 0])
        before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        if command == "equalize":
            done = works_or_one_line(
                equalize, container, "volumes/d", "volumes/out", num_workers=0, progress=False
            )
        else:
            done = works_or_one_line(
                create_metric_mask, container, "volumes/d", "volumes/out", 1, 1,
                num_workers=0, progress=False,
            )  # fmt: skip
        event(f"{command} {'done' if done is not None else 'refused'}")
        after = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        if done is None:
            assert after == before  # no staging dataset, no logs
        else:
            assert open_array(container, "volumes/out").shape == tuple(shape)
