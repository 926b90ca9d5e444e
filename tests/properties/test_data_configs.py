"""Data configs: any JSON a user may write is parsed and checked against the data, or refused
in one line naming the entry and key."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incasem.io import create_array
from incasem.io.data_config import load_data_config, validate_against_data

from .conftest import BOUNDED, folder, works_or_one_line

_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_TRIPLE = st.one_of(
    st.lists(st.integers(-5, 40), min_size=3, max_size=3),
    st.lists(_ANY, max_size=4),
    _ANY,
)
_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "file": st.sampled_from(["cell.zarr", "missing.zarr", "", "cell.zarr/volumes"]),
        "offset": _TRIPLE,
        "shape": _TRIPLE,
        "voxel_size": st.one_of(st.just([5, 5, 5]), _TRIPLE),
        "raw": st.sampled_from(["volumes/raw", "volumes/labels/mito", "nothing", ""]),
        "labels": st.one_of(
            st.dictionaries(st.sampled_from(["volumes/labels/mito", "x"]), _ANY, max_size=2),
            _ANY,
        ),
        "mask": st.one_of(st.sampled_from(["volumes/labels/mito", "nothing"]), _ANY),
        "metric_masks": st.one_of(st.lists(st.sampled_from(["volumes/raw", "y"])), _ANY),
        "ignore_value": _ANY,
        "weight": _ANY,
        "unknown_key": _ANY,
    },
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A container with raw and labels (16³ voxels of 5 nm) that generated configs refer to."""
    root = tmp_path_factory.mktemp("data")
    raw = create_array(root / "cell.zarr", "volumes/raw", (16, 16, 16), (5, 5, 5))
    raw[raw.roi] = np.full((16, 16, 16), 100, np.uint8)
    create_array(root / "cell.zarr", "volumes/labels/mito", (16, 16, 16), (5, 5, 5))
    return root


@settings(BOUNDED, max_examples=50)
@given(
    config=st.one_of(
        st.dictionaries(st.text(min_size=0, max_size=6), _ENTRY, max_size=3),
        st.lists(_ENTRY, max_size=2),
        _ANY,
    ),
    num_classes=st.one_of(st.none(), st.integers(1, 3)),
)
def test_any_data_config_is_checked_or_refused_in_one_line(root, config, num_classes):
    with folder() as configs:
        path = configs / "data.json"
        path.write_text(json.dumps(config))
        parsed = works_or_one_line(load_data_config, path, data_root=root)
        if parsed is not None:
            works_or_one_line(validate_against_data, parsed, num_classes, root)
