"""Model cards from other incasem versions: newer keys are ignored with a warning, a missing or
broken card is one line naming the file, for the library and the commands alike."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.torch.checkpoint import FORMAT_VERSION, load_checkpoint

from ..predict.conftest import write_checkpoint


def _variant(tmp_path: Path, name: str, change) -> Path:
    content = torch.load(write_checkpoint(tmp_path / "base.pt", threshold=0.6), weights_only=True)
    change(content)
    path = tmp_path / f"{name}.pt"
    torch.save(content, path)
    return path


def test_keys_from_a_newer_version_are_ignored_with_a_warning(tmp_path, caplog):
    path = _variant(tmp_path, "newer", lambda c: c["card"].update(organelle_atlas={"v": 3}))
    with caplog.at_level(logging.WARNING):
        card = load_checkpoint(path).card
    assert card.threshold == 0.6 and card.class_names == ["background", "mito"]
    assert f"{path}: ignoring model-card keys this incasem" in caplog.text
    assert "organelle_atlas" in caplog.text


def test_post_processing_round_trips_and_older_cards_have_none(tmp_path):
    path = write_checkpoint(tmp_path / "post.pt", fill_holes=True, min_object_nm3=2e6)
    card = load_checkpoint(path).card
    assert card.fill_holes is True and card.min_object_nm3 == 2e6
    older = _variant(
        tmp_path, "v4", lambda c: [c["card"].pop("fill_holes"), c["card"].pop("min_object_nm3")]
    )
    card = load_checkpoint(older).card
    assert card.fill_holes is False and card.min_object_nm3 == 0.0


BROKEN = {
    "no_card": (
        lambda c: c.pop("card"),
        f"an incasem checkpoint (format {FORMAT_VERSION}) without its model card",
    ),
    "list_card": (lambda c: c.update(card=[1, 2]), "the model card is a list, not a mapping"),
    "no_hparams": (lambda c: c["card"].pop("hparams"), "the model card lacks hparams"),
    "bad_sizes": (
        lambda c: c["card"].update(voxel_size="5"),
        "model card key 'voxel_size' is a str, not a list",
    ),
    "bad_threshold": (
        lambda c: c["card"].update(threshold=3),
        "model card threshold 3 is not a probability",
    ),
    "bad_fill_holes": (
        lambda c: c["card"].update(fill_holes="yes"),
        "model card fill_holes 'yes' must be true or false",
    ),
    "bad_min_object": (
        lambda c: c["card"].update(min_object_nm3=-1.0),
        "model card min_object_nm3 -1.0 must be a volume >= 0 (nm³)",
    ),
    "bad_hparams": (
        lambda c: c["card"]["hparams"].update(wings=2),
        "the model card's hparams do not describe a model",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_cards_are_one_line(tmp_path, capsys, name):
    change, message = BROKEN[name]
    path = _variant(tmp_path, name, change)
    with pytest.raises(IncasemError) as error:
        load_checkpoint(path)
    assert str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)
    assert main(["export", str(path), "-o", str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"incasem export: error: {path}: {message}")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.pt").exists()
