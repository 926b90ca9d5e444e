"""Model cards: whatever a hand-edited or foreign card holds, loading a model either works or
is refused in one line naming the file and key (`load_checkpoint`, used by export, models
list, predict and fine-tuning)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from incasem.torch.checkpoint import load_checkpoint

from ..predict.conftest import write_checkpoint
from .conftest import BOUNDED, folder, works_or_one_line

_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-10, 300), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
_TRIPLE = st.one_of(st.lists(st.integers(-6, 300), min_size=3, max_size=3), _ANY)
_FIELDS = {
    "hparams": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "num_classes": _ANY,
                "num_fmaps": _ANY,
                "downsample_factors": _ANY,
                "bogus": _ANY,
            },
        ),
        _ANY,
    ),  # fmt: skip
    "input_size_voxels": _TRIPLE,
    "output_size_voxels": _TRIPLE,
    "voxel_size": _TRIPLE,
    "class_names": st.one_of(st.lists(st.text(max_size=5), max_size=3), _ANY),
    "normalisation": _ANY,
    "iteration": _ANY,
    "metrics": _ANY,
    "threshold": _ANY,
    "raw_histogram": st.one_of(st.lists(st.integers(-1, 9), min_size=256, max_size=256), _ANY),
    "from_the_future": _ANY,
}


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    path = write_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", "unet2")
    return torch.load(path, weights_only=True)


@settings(BOUNDED, max_examples=50)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(_FIELDS)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({key: _FIELDS[key] for key in keys})
    ),
    removed=st.sets(st.sampled_from(sorted(_FIELDS)), max_size=2),
    format_version=st.one_of(st.just(3), _ANY),
)
def test_any_card_loads_or_is_refused_in_one_line(content, changes, removed, format_version):
    edited = copy.copy(content)
    card = dict(edited["card"]) | changes
    for key in removed:
        card.pop(key, None)
    edited["card"] = card
    edited["format_version"] = format_version
    with folder() as root:
        torch.save(edited, root / "edited.pt")
        loaded = works_or_one_line(load_checkpoint, root / "edited.pt")
    if loaded is not None:  # what loads describes a usable model
        assert all(v > 0 for v in loaded.card.voxel_size)
        assert len(loaded.card.class_names) >= 1


@BOUNDED
@given(start=st.binary(max_size=64), text=st.text(max_size=64))
def test_any_bytes_are_not_a_checkpoint(start, text):
    with folder() as root:
        (root / "bytes.pt").write_bytes(start)
        (root / "text.pt").write_text(text)
        for name in ("bytes.pt", "text.pt"):
            assert works_or_one_line(load_checkpoint, root / name) is None
