"""Model files to hand on: one self-describing file per model, from a checkpoint or ASEM weights.

An exported model is an incasem checkpoint (see `incasem.torch.checkpoint`: weights under
``model_state_dict`` plus the model card) without the optimizer state, with an ``export`` block
added: where it came from (checkpoint, its sha256, training run, data configs), the context in
voxels and nm, and the metrics at export. Keeping the checkpoint layout, rather than TorchScript,
means every incasem tool (``predict --checkpoint``, fine-tuning with ``--start_from``) reads it
unchanged, the weights stay inspectable with plain ``torch.load``, and the file is a third of a
training checkpoint (no Adam moments).

Weights of the original ASEM tool are ``torch.save`` dicts ``{"model_state_dict": ...,
"optimizer_state_dict": ...}`` with no description at all (that lived in their MongoDB).
`import_asem` wraps them with the card of the published model they belong to (`PUBLISHED`), or
with the organelle and voxel size given by hand.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from incasem import __version__
from incasem.atomic import write_atomic
from incasem.digest import file_sha256
from incasem.errors import IncasemError
from incasem.torch.checkpoint import (
    DEFAULT_NORMALISATION,
    FORMAT_VERSION,
    ModelCard,
    card_from_content,
    load_checkpoint,
    read_model_file,
)
from incasem.tracking.run_folder import training_run_record

#: The published ASEM models: id -> (organelle, sample preparation, voxel size in nm (z, y, x)).
PUBLISHED: dict[int, tuple[str, str, tuple[int, int, int]]] = {
    1847: ("mito", "chemical fixation", (5, 5, 5)),
    1837: ("golgi", "chemical fixation", (5, 5, 5)),
    1841: ("er", "chemical fixation", (5, 5, 5)),
    1675: ("mito", "high-pressure freezing", (4, 4, 4)),
    1669: ("er", "high-pressure freezing", (4, 4, 4)),
    1986: ("coated_pits", "high-pressure freezing", (5, 5, 5)),
    2000: ("nuclear_pores", "high-pressure freezing", (5, 5, 5)),
}

#: Input and output size (voxels, z y x) the published models were trained with.
ASEM_INPUT_SIZE = [204, 204, 204]
ASEM_OUTPUT_SIZE = [110, 110, 110]

MODEL_SUFFIXES = (".pt", ".pth")


def _write_torch_atomic(content: dict[str, Any], out: Path, overwrite: bool) -> Path:
    return write_atomic(out, lambda tmp: torch.save(content, tmp), overwrite)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _content(model: torch.nn.Module, card: ModelCard, export: dict[str, Any]) -> dict[str, Any]:
    context = [int(c) for c in model.context]
    export = {
        "exported": _now(),
        "incasem_version": __version__,
        "torch_version": str(torch.__version__),
        "context_voxels": context,
        "context_nm": [c * v for c, v in zip(context, card.voxel_size, strict=True)],
        **export,
    }
    return {
        "format": "incasem-checkpoint",
        "format_version": FORMAT_VERSION,
        "kind": "exported-model",
        "model_state_dict": model.state_dict(),
        "card": asdict(card),
        "export": export,
    }


def export_model(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    overwrite: bool = False,
    description: str = "",
) -> Path:
    """Write checkpoint ``checkpoint`` as a self-describing model file ``out``.

    The file keeps the weights and model card (architecture, voxel size in nm, input/output
    size in voxels, normalisation, class names, data digest, metrics) and adds the context
    (voxels and nm, z y x), the source checkpoint with its sha256 and, for a checkpoint in a
    run folder, the training run id, name and data configs. Written atomically; an existing
    ``out`` is replaced only with ``overwrite``. Raises `IncasemError` for an unreadable
    checkpoint.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    loaded = load_checkpoint(checkpoint)
    export = {
        "source": str(checkpoint.resolve()),
        "source_sha256": file_sha256(checkpoint),
        "training_run": training_run_record(checkpoint),
        "description": description,
    }
    return _write_torch_atomic(_content(loaded.model, loaded.card, export), out, overwrite)


def _asem_state(weights: Path) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise IncasemError(f"{weights}: weights file not found")
    content = read_model_file(weights)
    if not isinstance(content, dict):
        raise IncasemError(f"{weights}: expected a dict of weights, got {type(content).__name__}")
    state = content.get("model_state_dict", content)
    if "final_conv_pass.conv_pass.0.weight" not in state:
        raise IncasemError(
            f"{weights}: no final_conv_pass.conv_pass.0.weight; not an ASEM U-Net state dict"
        )
    return state


def import_asem(
    weights: str | os.PathLike,
    out: str | os.PathLike,
    model_id: int | None = None,
    organelle: str | None = None,
    voxel_size: list[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Wrap original ASEM weights into a self-describing model file.

    Args:
        weights: the original checkpoint (``{"model_state_dict": ...}`` or a bare state dict
            with their parameter names, ``unet.l_conv.{level}.conv_pass.{idx}...``).
        out: model file to write.
        model_id: a published model id (see `PUBLISHED`): sets organelle and voxel size.
        organelle: class name of channel 1 (needed without ``model_id``).
        voxel_size: nm (z, y, x) the model was trained at (needed without ``model_id``).
        overwrite: replace an existing ``out``.

    The architecture is the published one (32 feature maps, factor 2, three 2x2x2 levels,
    nearest-neighbour upsampling, 3x3x3 head); the class count is read from the weights.
    Raises `IncasemError` if the weights do not fit it or the description is incomplete.
    """
    from incasem.torch.models import ASEMUNet, load_model_state

    weights, out = Path(weights), Path(out)
    preparation = ""
    if model_id is not None:
        if model_id not in PUBLISHED:
            known = ", ".join(map(str, PUBLISHED))
            raise IncasemError(f"--model-id {model_id}: not a published ASEM model ({known})")
        published_organelle, preparation, published_voxel_size = PUBLISHED[model_id]
        organelle = organelle or published_organelle
        voxel_size = voxel_size or list(published_voxel_size)
    if not organelle or not voxel_size:
        raise IncasemError(
            f"{weights}: give --model-id, or --organelle and --voxel-size, to describe the model"
        )
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise IncasemError(f"--voxel-size {voxel_size}: expected three positive nm values z y x")
    state = _asem_state(weights)
    num_classes = int(state["final_conv_pass.conv_pass.0.weight"].shape[0])
    model = ASEMUNet(num_classes=num_classes)
    try:
        load_model_state(model, {"model_state_dict": state})
    except ValueError as e:
        raise IncasemError(f"{weights}: {e}") from None
    class_names = ["background", organelle] + [f"class_{c}" for c in range(2, num_classes)]
    card = ModelCard(
        hparams=model.hparams(),
        input_size_voxels=list(ASEM_INPUT_SIZE),
        output_size_voxels=list(ASEM_OUTPUT_SIZE),
        voxel_size=[int(v) for v in voxel_size],
        class_names=class_names,
        normalisation=dict(DEFAULT_NORMALISATION),
    )
    export = {
        "source": str(weights.resolve()),
        "source_sha256": file_sha256(weights),
        "training_run": {},
        "description": "original ASEM weights"
        + (f", published model {model_id} ({organelle}, {preparation})" if model_id else ""),
        "asem_model_id": model_id,
    }
    return _write_torch_atomic(_content(model, card, export), out, overwrite)


@dataclass
class ModelInfo:
    """What `describe_model` finds in a file.

    Attributes:
        path: the file.
        kind: ``exported-model``, ``checkpoint`` (a training checkpoint), ``asem-weights``
            (original ASEM weights without a card; import them with `import_asem`) or
            ``unknown``.
        card: the model card (None without one).
        export: the export block (None unless exported).
        size_bytes: file size.
        problem: why the file is not usable as it is, or "".
    """

    path: Path
    kind: str
    card: ModelCard | None
    export: dict[str, Any] | None
    size_bytes: int
    problem: str = ""


def describe_model(path: str | os.PathLike) -> ModelInfo:
    """Read a model file's description without building the model (``weights_only`` load, so
    an untrusted file cannot run code)."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    try:
        content = read_model_file(path)
    except IncasemError as e:
        return ModelInfo(path, "unknown", None, None, size, str(e).removeprefix(f"{path}: "))
    if not isinstance(content, dict):
        return ModelInfo(path, "unknown", None, None, size, "not a dict of weights")
    if content.get("format") == "incasem-checkpoint":
        try:
            card = card_from_content(content, path)
        except IncasemError as e:
            return ModelInfo(path, "unknown", None, None, size, str(e).removeprefix(f"{path}: "))
        kind = "exported-model" if content.get("kind") == "exported-model" else "checkpoint"
        return ModelInfo(path, kind, card, content.get("export"), size)
    state = content.get("model_state_dict", content)
    if isinstance(state, dict) and "final_conv_pass.conv_pass.0.weight" in state:
        hint = "original ASEM weights: run 'incasem export --asem FILE --model-id N -o model.pt'"
        return ModelInfo(path, "asem-weights", None, None, size, hint)
    return ModelInfo(path, "unknown", None, None, size, "not an incasem or ASEM model")


def list_models(folder: str | os.PathLike) -> list[ModelInfo]:
    """`describe_model` of every ``*.pt``/``*.pth`` under ``folder`` (recursively), by path.

    Raises `IncasemError` if ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise IncasemError(f"{folder}: no such models folder")
    paths = sorted(
        p for p in folder.rglob("*") if p.suffix in MODEL_SUFFIXES and not p.name.startswith(".")
    )
    return [describe_model(p) for p in paths]


def format_models(infos: list[ModelInfo], folder: str | os.PathLike) -> str:
    """A plain-text table: file, kind, classes, voxel size (nm), input/output (voxels),
    iteration, validation F1 at the model's decision threshold and that threshold ("-" where it
    has none: it decides at 0.5), size (MB), source run, and a note (why a file is not usable)."""
    header = [
        "file", "kind", "classes", "voxel nm", "in -> out", "iter", "F1", "threshold", "MB", "run",
        "note",
    ]  # fmt: skip
    rows = [header]
    for info in infos:
        name = str(info.path.relative_to(folder))
        mb = f"{info.size_bytes / 1e6:.1f}"
        card = info.card
        if card is None:
            rows.append([name, info.kind, "-", "-", "-", "-", "-", "-", mb, "-", info.problem])
            continue
        run = (info.export or {}).get("training_run", {}).get("run_id")
        if run is None and info.export and info.export.get("asem_model_id"):
            run = f"ASEM {info.export['asem_model_id']}"
        f1 = card.metrics.get("f1" if card.threshold is None else "best_f1")
        rows.append(
            [
                name,
                info.kind,
                ",".join(card.class_names[1:]),
                "x".join(map(str, card.voxel_size)),
                f"{'x'.join(map(str, card.input_size_voxels))} -> "
                f"{'x'.join(map(str, card.output_size_voxels))}",
                str(card.iteration),
                "-" if f1 is None else f"{f1:.4f}",
                "-" if card.threshold is None else f"{card.threshold:.3f}",
                mb,
                "-" if run is None else str(run),
                "",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
