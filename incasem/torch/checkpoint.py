"""Self-describing, atomically written checkpoints.

A checkpoint is everything prediction needs and nothing else is (no database, no training
config): the weights, the architecture (`ASEMUNet.hparams`), the sizes the model was trained
with, the voxel size, class names, how raw intensities are normalised, the iteration, the
optimizer state (to resume) and a digest of the training data config (to know what a model has
seen). It is written to a temporary file in the same folder and renamed, so a crash while saving
never leaves a truncated file that looks like a checkpoint.

The file is a ``torch.save`` dict with the model weights under ``model_state_dict``, the layout
gunpowder's Train node and the original incasem use, so their tools can read ours.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from incasem import __version__
from incasem.atomic import write_atomic
from incasem.errors import IncasemError

#: Version of the checkpoint layout and its model card: 2 added the card's ``threshold``, 3 its
#: ``raw_histogram``, 4 its ``training_nodes``, 5 its post-processing (``fill_holes``,
#: ``min_object_nm3``).
FORMAT_VERSION = 5

logger = logging.getLogger(__name__)

#: How raw uint8 intensities become network input: x / 255 * 2 - 1, i.e. [0, 255] -> [-1, 1].
DEFAULT_NORMALISATION = {"type": "scale_shift", "input_range": [0, 255], "output_range": [-1, 1]}


@dataclass
class ModelCard:
    """What a checkpoint says about its model.

    Attributes:
        hparams: constructor arguments of `ASEMUNet`.
        input_size_voxels: training input size (z, y, x).
        output_size_voxels: training output size (z, y, x).
        voxel_size: nm (z, y, x) of the training data; prediction data must match.
        class_names: one name per output channel, background first.
        normalisation: raw intensity mapping, see `DEFAULT_NORMALISATION`.
        iteration: training iterations done.
        data_digest: sha256 of the training data config(s), or "" if unknown.
        metrics: validation metrics at this iteration, if any.
        threshold: decision threshold on p(class 1) chosen by validation at this iteration
            (the best F1 over the threshold sweep; two classes only); None where the model
            was not validated, and prediction then uses 0.5.
        incasem_version: version that wrote the checkpoint.
        raw_histogram: grey-value counts (256 levels) of the training raw, sampled over the
            training ROIs (`incasem.io.intensity.sample_histogram`); prediction warns when its
            input's histogram is far from it. Empty where unknown (older checkpoints).
        training_nodes: the user's gunpowder nodes the training pipeline had
            (``training.pipeline.extra_nodes``: class, place, args), so whoever uses the
            model knows what training saw; empty for none (and for older checkpoints).
        fill_holes: post-processing of the class-1 segmentation chosen by validation with the
            threshold (two classes only): fill enclosed holes. False for older checkpoints.
        min_object_nm3: likewise: remove objects smaller than this volume in nm³; 0 keeps
            every object (and is what older checkpoints read as).
    """

    hparams: dict[str, Any]
    input_size_voxels: list[int]
    output_size_voxels: list[int]
    voxel_size: list[int]
    class_names: list[str]
    normalisation: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    iteration: int = 0
    data_digest: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    incasem_version: str = __version__
    threshold: float | None = None
    raw_histogram: list[int] = field(default_factory=list)
    training_nodes: list[dict[str, Any]] = field(default_factory=list)
    fill_holes: bool = False
    min_object_nm3: float = 0.0

    def decision_threshold(self) -> tuple[float, str]:
        """The threshold prediction uses by default and where it comes from, for messages."""
        if self.threshold is None:
            return 0.5, "0.5, the model has no calibrated threshold"
        return float(self.threshold), "the model's, chosen on its validation data"


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    card: ModelCard,
    optimizer: torch.optim.Optimizer | None = None,
    training_model: torch.nn.Module | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file + rename) and return its path.

    Args:
        path: the file to write.
        model: the weights to predict with (``model_state_dict``).
        card: the model card.
        optimizer: its state, to resume training.
        training_model: the weights the optimizer steps, when they are not ``model``'s (with
            weight averaging ``model`` is the average); stored as ``training_state_dict`` so a
            resumed run continues both.
    """
    content = {
        "format": "incasem-checkpoint",
        "format_version": FORMAT_VERSION,
        "model_state_dict": model.state_dict(),
        "card": asdict(card),
    }
    if optimizer is not None:
        content["optimizer_state_dict"] = optimizer.state_dict()
    if training_model is not None:
        content["training_state_dict"] = training_model.state_dict()
    return write_atomic(path, lambda tmp: torch.save(content, tmp))


#: What every torch.save file of the legacy (non-zip) format starts with: its pickled magic.
_LEGACY_TORCH_START = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]


def _check_torch_file(path: str | os.PathLike) -> None:
    """Raise `IncasemError` ``<path>: not a checkpoint: ...`` unless the file starts like a
    torch file (a zip archive, or the legacy format's magic number), so that random bytes or
    text are named for what they are instead of failing deep inside the unpickler."""
    with open(path, "rb") as file:
        start = file.read(1024)
    if start.startswith(b"PK\x03\x04") or start.startswith(_LEGACY_TORCH_START):
        return
    if not start:
        reason = "the file is empty"
    elif _is_text(start):
        reason = "the file is text, not a torch model file"
    else:
        reason = f"the file starts with bytes {start[:8].hex(' ')}, not like a torch model file"
    raise IncasemError(f"{path}: not a checkpoint: {reason}")


def _is_text(start: bytes) -> bool:
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c.isspace() for c in text)


def read_model_file(path: str | os.PathLike, map_location: str = "cpu") -> Any:
    """``torch.load`` of a model file with ``weights_only=True``, failures as one line.

    Model files are meant to be shared, and a full unpickle runs whatever code a file carries
    (a ``__reduce__`` payload), so every model file incasem reads goes through here: tensors,
    numbers, strings, lists and dicts load; anything else is refused before it is built.

    Raises `IncasemError` naming the file: refused objects, a corrupt or truncated file, or
    something that is not a torch file.
    """
    _check_torch_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise IncasemError(
            f"{path}: refused: the file holds Python objects other than weights and plain data, "
            "and loading them could run code; incasem loads weights only (re-save the state "
            "dict with torch.save from code you trust)"
        ) from None
    except Exception as e:  # torch raises many types for corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise IncasemError(f"{path}: cannot read ({type(e).__name__}: {first})") from None


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``model`` is built from the card and holds the weights."""

    path: Path
    model: torch.nn.Module
    card: ModelCard
    optimizer_state: dict[str, Any] | None
    #: The weights the optimizer stepped when they differ from ``model``'s (weight averaging).
    training_state: dict[str, Any] | None = None


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> Checkpoint:
    """Load an incasem checkpoint and build its model.

    Raises `IncasemError` naming the file if it is missing, unreadable or not an incasem
    checkpoint (an original-incasem weights file has no card: build the model yourself and use
    `incasem.torch.models.load_model_state`).
    """
    from incasem.torch.models import ASEMUNet, load_model_state

    path = Path(path)
    if not path.is_file():
        raise IncasemError(f"{path}: checkpoint not found")
    content = read_model_file(path, map_location)
    if not isinstance(content, dict) or content.get("format") != "incasem-checkpoint":
        raise IncasemError(
            f"{path}: not an incasem checkpoint (no model card); for original ASEM weights build "
            "ASEMUNet with their hyper-parameters and call load_model_state"
        )
    card = card_from_content(content, path)
    # The card's hparams size the model: check them against the file's weights on the meta
    # device (shapes only) before allocating, so a card claiming 10^5 feature maps is refused
    # instead of asking for a terabyte.
    try:
        with torch.device("meta"):
            skeleton = ASEMUNet(**card.hparams)
    except (TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise IncasemError(
            f"{path}: the model card's hparams do not describe a model ({first})"
        ) from None
    try:
        with warnings.catch_warnings():  # loading into meta tensors is the no-op we want
            warnings.simplefilter("ignore", UserWarning)
            load_model_state(skeleton, content)
    except ValueError as e:
        raise IncasemError(f"{path}: {e}") from None
    model = ASEMUNet(**card.hparams)
    load_model_state(model, content)
    return Checkpoint(
        path,
        model,
        card,
        content.get("optimizer_state_dict"),
        content.get("training_state_dict"),
    )


_CARD_TYPES = (
    ("hparams", dict),
    ("input_size_voxels", list),
    ("output_size_voxels", list),
    ("voxel_size", list),
    ("class_names", list),
    ("normalisation", dict),
    ("metrics", dict),
    ("raw_histogram", list),
    ("training_nodes", list),
)


def card_from_content(content: dict[str, Any], path: str | os.PathLike) -> ModelCard:
    """The model card of a loaded incasem checkpoint, checked key by key.

    Keys this version does not know (a card from a newer incasem) are ignored with a warning;
    a missing card, a card that is not a mapping, or missing or mistyped required keys raise
    `IncasemError` in one line naming the file.
    """
    raw = content.get("card")
    version = content.get("format_version")
    if raw is None:
        raise IncasemError(
            f"{path}: an incasem checkpoint (format {version}) without its model card; it cannot "
            "say what model it holds (re-export it from its training checkpoint)"
        )
    if not isinstance(raw, dict):
        raise IncasemError(f"{path}: the model card is a {type(raw).__name__}, not a mapping")
    known = {f.name for f in fields(ModelCard)}
    unknown = sorted(set(raw) - known)
    if unknown:
        logger.warning(
            "%s: ignoring model-card keys this incasem %s does not know (format %s, this "
            "version reads %d): %s",
            path,
            __version__,
            version,
            FORMAT_VERSION,
            ", ".join(unknown),
        )
    required = [
        f.name for f in fields(ModelCard) if f.default is MISSING and f.default_factory is MISSING
    ]
    missing = [key for key in required if key not in raw]
    if missing:
        raise IncasemError(f"{path}: the model card lacks {', '.join(missing)}")
    card = ModelCard(**{key: value for key, value in raw.items() if key in known})
    for key, kind in _CARD_TYPES:
        if not isinstance(getattr(card, key), kind):
            raise IncasemError(
                f"{path}: model card key '{key}' is a {type(getattr(card, key)).__name__}, "
                f"not a {kind.__name__}"
            )
    threshold = card.threshold
    if threshold is not None and not (isinstance(threshold, int | float) and 0 < threshold < 1):
        raise IncasemError(f"{path}: model card threshold {threshold!r} is not a probability")
    _check_card_values(card, path)
    return card


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_card_values(card: ModelCard, path: str | os.PathLike) -> None:
    """Raise `IncasemError` naming the file and key for a card value no model can have (a
    hand-edited card): sizes and voxel size are 3 positive whole numbers (z, y, x), class
    names strings, the iteration at least 0, a histogram 256 counts."""
    for key in ("voxel_size", "input_size_voxels", "output_size_voxels"):
        value = getattr(card, key)
        if len(value) != 3 or not all(_whole(v, 1) for v in value):
            raise IncasemError(
                f"{path}: model card {key} {value} must be 3 positive whole numbers (z, y, x)"
            )
    if not card.class_names or not all(isinstance(n, str) and n for n in card.class_names):
        raise IncasemError(f"{path}: model card class_names {card.class_names} must be names")
    if not _whole(card.iteration, 0):
        raise IncasemError(f"{path}: model card iteration {card.iteration!r} must be >= 0")
    if not isinstance(card.fill_holes, bool):
        raise IncasemError(
            f"{path}: model card fill_holes {card.fill_holes!r} must be true or false"
        )
    size = card.min_object_nm3
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 <= size < float("inf"):
        raise IncasemError(
            f"{path}: model card min_object_nm3 {size!r} must be a volume >= 0 (nm³)"
        )
    histogram = card.raw_histogram
    if histogram and (len(histogram) != 256 or not all(_whole(c, 0) for c in histogram)):
        raise IncasemError(f"{path}: model card raw_histogram must be 256 counts (or empty)")


def card_summary(card: ModelCard) -> str:
    """One line describing a model, for logs and listings."""
    return json.dumps(
        {
            "classes": card.class_names,
            "voxel_size": card.voxel_size,
            "input": card.input_size_voxels,
            "output": card.output_size_voxels,
            "iteration": card.iteration,
            "fmaps": card.hparams.get("num_fmaps"),
        }
    )
