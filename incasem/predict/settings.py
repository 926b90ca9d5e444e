"""What a prediction run is asked to do: one validated settings object, two ways to fill it.

The command line (Sacred configuration, ``with key=value``) and the library API
(`incasem.predict.predict`) both end in `PredictionSettings`, a pydantic model like training's
`TrainingConfig`, which checks every value before any work starts and states the first problem
in one line (`IncasemError`). Each field is declared once (`incasem.settings.setting`: type,
default, description, Sacred key, old names); the defaults (`DEFAULT_CONFIG`), the reading of a
configuration (`PredictionSettings.from_config`) and the command line's flags
(`incasem.settings.add_flags`) follow from it. The configuration keeps the
original incasem keys (``prediction.data``, ``prediction.checkpoint``,
``prediction.input_size_voxels``, ``prediction.output_size_voxels``, ``prediction.num_workers``,
``prediction.log_metrics``, ``prediction.torch.device``, ``directories.data``) so their users'
command lines keep working, and adds the new ones. ``configs/prediction.yaml`` is the same
configuration with comments (a test keeps the two equal).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BeforeValidator,
    ConfigDict,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    conlist,
    model_validator,
)

from incasem.errors import IncasemError
from incasem.launch import check_template
from incasem.settings import ONE_WORD, OpenUnitFloat, Settings, checked, deprecated, setting

#: Probability dtypes written (uint8: p * 255, rounded).
ProbabilityDtype = Literal["uint8", "float32"]
#: Inference precisions; `incasem.predict.block.forward_block` applies them.
Precision = Literal["float32", "bfloat16", "float16"]
#: Voxel sizes outputs can be written at (`incasem.predict.resample`).
OutputVoxelSize = Literal["data", "model"]
PRECISIONS = get_args(Precision)


def _positive_shape(roi: list[int]) -> None:
    if min(roi[3:]) < 1:
        raise ValueError("must have a shape (last three values) > 0")


def _auto_word(value: Any) -> Any:
    """``["auto"]`` (a YAML list, the command line's words) is ``"auto"``."""
    if isinstance(value, list | tuple) and list(value) == ["auto"]:
        return "auto"
    return value


def _template(value: str) -> None:
    check_template(value, "worker_command")


def parse_gpus(value: str | int | Sequence[int]) -> list[int]:
    """GPU indices from ``"0,1"``, ``0`` or ``[0, 1]``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        gpus = [int(g) for g in items if str(g).strip() != ""]
    except (TypeError, ValueError):
        raise IncasemError(f"gpus must be GPU indices like 0,1 — got {value!r}") from None
    if not gpus or min(gpus) < 0:
        raise IncasemError(f"gpus must be non-negative GPU indices, got {value!r}")
    return gpus


#: ``[z, y, x, dz, dy, dx]``: offset and shape in voxels.
RoiVoxels = Annotated[conlist(int, min_length=6, max_length=6), checked(_positive_shape)]
#: Network input in voxels (z, y, x), or ``"auto"``.
InputSize = Annotated[
    Literal["auto"] | conlist(int, min_length=3, max_length=3) | None, BeforeValidator(_auto_word)
]
Gpus = Annotated[list[NonNegativeInt], BeforeValidator(parse_gpus)]
WorkerCommand = Annotated[str, checked(_template)]


class PredictionSettings(Settings):
    """Everything a prediction run needs; sizes in voxels (z, y, x).

    Each field's description says what it means (it is also the flag's help, see
    `incasem.settings`); its Sacred key is ``prediction.<name>`` unless said.
    ``input_size_voxels`` ``"auto"``: the largest block whose forward pass fits the memory per
    worker (fastest; `incasem.predict.block_size`). ``output_voxel_size`` applies to data at a
    whole fraction of the model's voxel size (e.g. 5 nm data, 10 nm model; the input is
    averaged to the model's): ``"data"`` writes the outputs at the data's voxel size (linear
    upsampling, `incasem.predict.resample`), ``"model"`` at the model's.
    """

    checkpoint: str | None = setting(
        None, "checkpoint file (.pt); or give run_id", key="prediction.checkpoint"
    )
    run_id: int | None = setting(
        None,
        "training run N in the runs folder (uses its best checkpoint, else the latest)",
        key="prediction.run_id_training", flags=["-r"],
    )  # fmt: skip
    iteration: int | Literal["best"] | None = setting(
        None,
        "with run_id: an iteration K, or 'best' (best.json); default the best checkpoint if "
        "the run has one, else the latest",
        key="prediction.iteration", expects="must be an integer or 'best'",
    )  # fmt: skip
    runs_dir: str = setting("runs", "training runs folder", key="directories.runs")
    data: str | list[str] | None = setting(
        None, "data config JSON (several: comma-separated or a list)", key="prediction.data",
        nargs=ONE_WORD,
    )  # fmt: skip
    data_root: str | None = setting(
        None, "folder that relative 'file' paths in data configs are joined to",
        key="directories.data",
    )  # fmt: skip
    input: str | None = setting(
        None, "container to predict instead of data", key="prediction.input"
    )
    dataset: str = setting("volumes/raw", "raw dataset in input", key="prediction.dataset")
    roi: RoiVoxels | None = setting(
        None, "with input: offset and shape in voxels (default: the whole dataset)",
        key="prediction.roi", expects="must be 6 integers (voxels, z y x)",
        metavar=("Z", "Y", "X", "DZ", "DY", "DX"),
    )  # fmt: skip
    input_size_voxels: InputSize = setting(
        None,
        "network input per block, voxels; default the smallest valid size whose output covers "
        "both the training output and 110 voxels; 'auto': the largest block that fits the "
        "memory per worker (fastest)",
        key="prediction.input_size_voxels", old=["input_size"],
        expects="must be 3 integers (voxels, z y x) or 'auto'", metavar="Z Y X|auto", nargs="+",
    )  # fmt: skip
    output_size_voxels: conlist(int, min_length=3, max_length=3) | None = setting(
        None,
        "if given, must equal the network's output for input_size_voxels (the original "
        "configuration's check)",
        key="prediction.output_size_voxels", expects="must be 3 integers (voxels, z y x)",
        metavar=("Z", "Y", "X"),
    )  # fmt: skip
    num_workers: PositiveInt = setting(
        1, "daisy worker processes, each with its own model", key="prediction.num_workers"
    )
    gpus: Gpus | None = setting(
        None, "GPUs to spread workers over, e.g. 0,1 (worker i uses gpus[i % len(gpus)])",
        key="prediction.gpus", nargs=ONE_WORD,
    )  # fmt: skip
    workers_per_gpu: PositiveInt | None = setting(
        None, "workers per GPU (sets num_workers to this times the number of GPUs)",
        key="prediction.workers_per_gpu",
    )  # fmt: skip
    precision: Precision = setting(
        "float32", "network arithmetic: float32, or 16-bit autocast (faster on GPUs)",
        key="prediction.precision",
    )  # fmt: skip
    worker_command: WorkerCommand | None = setting(
        None,
        "launch each worker through this template, e.g. 'srun --gpus=1 {command}' ({command}, "
        "a word of its own, becomes the worker's command; no shell runs it)",
        key="prediction.worker_command",
    )  # fmt: skip
    scheduler_host: str = setting(
        "127.0.0.1", "address the scheduler listens on and workers connect to",
        key="prediction.scheduler_host", flags=["--host"],
    )  # fmt: skip
    log_metrics: bool = setting(
        False, "score against the entries' labels while predicting", key="prediction.log_metrics"
    )
    threshold: OpenUnitFloat | None = setting(
        None,
        "foreground threshold for two classes (default: the model's calibrated threshold, "
        "else 0.5)",
        key="prediction.threshold",
    )  # fmt: skip
    flips: bool = setting(
        False, "average the probabilities over flips of each block (z, y, x: 8 flips; y, x: "
        "4 when z's voxel size differs); as many times slower", key="prediction.flips",
    )  # fmt: skip
    post_processing: bool = setting(
        True, "apply the model card's post-processing (hole filling, minimum object size) to "
        "a two-class segmentation", key="prediction.post_processing",
    )  # fmt: skip
    probability_dtype: ProbabilityDtype = setting(
        "uint8", "probability dtype (uint8 = p*255, rounded)",
        key="prediction.probability_dtype", old=["probabilities"],
    )  # fmt: skip
    output: str | None = setting(
        None, "container to write into (default: each entry's input container)",
        key="prediction.output.container",
    )  # fmt: skip
    output_group: str | None = setting(
        None, "group for the outputs (default: volumes/predictions/<model>/predict_<new id>)",
        key="prediction.output.group",
    )  # fmt: skip
    output_voxel_size: OutputVoxelSize = setting(
        "data", "data finer than the model: write outputs at the data's voxel size "
        "(upsampled) or the model's",
        key="prediction.output.voxel_size",
    )  # fmt: skip
    resume: int | bool | None = setting(
        None, "continue prediction ID (or output_group without ID), skipping its done blocks",
        key="prediction.resume", expects="must be a prediction id (integer)", nargs="?",
        const=True, metavar="ID",
    )  # fmt: skip
    overwrite: bool = setting(
        False, "replace outputs (an explicit output_group, or a resumed prediction whose "
        "inputs changed)",
        key="prediction.overwrite",
    )  # fmt: skip
    deterministic: bool = setting(
        False, "bit-identical results for any block layout (CPU: several times slower)",
        key="prediction.deterministic",
    )  # fmt: skip
    device: str | int = setting(
        "auto", "auto, cpu, cuda, cuda:N or a GPU index", key="prediction.torch.device"
    )
    block_timeout: PositiveFloat | None = setting(
        None, "seconds before a stuck block is retried (default: derived from the block size)",
        key="prediction.block_timeout",
    )  # fmt: skip
    max_retries: NonNegativeInt = setting(
        2, "attempts per block after the first", key="prediction.max_retries"
    )
    progress: bool = setting(True, "show a progress bar")
    sacred_run_id: int | str | None = setting(
        None, "recorded in the outputs' provenance when run through Sacred", cli=False
    )

    model_config = ConfigDict(extra="forbid")

    def __eq__(self, other: object) -> bool:
        """Equal settings ask for the same prediction (the Sacred run id is not compared)."""
        if not isinstance(other, PredictionSettings):
            return NotImplemented
        return self.model_dump(exclude={"sacred_run_id"}) == other.model_dump(
            exclude={"sacred_run_id"}
        )

    __hash__ = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _consistent(self) -> PredictionSettings:
        """The choices that depend on each other: one model, one kind of input, a resume."""
        if self.checkpoint is None and self.run_id is None:
            raise IncasemError(
                "no model given: pass a checkpoint (prediction.checkpoint / --checkpoint) or a "
                "training run (prediction.run_id_training / --run_id)"
            )
        if (self.data is None) == (self.input is None):
            raise IncasemError(
                "give either a data config (prediction.data / --data) or an input container "
                "(prediction.input / --input), not both or neither"
            )
        if self.roi is not None and self.input is None:
            raise IncasemError("--roi needs --input (a data config has its own ROIs)")
        if self.workers_per_gpu is not None:
            self.num_workers = self.workers_per_gpu * len(self.gpus or [0])
        if self.resume is True and self.output_group is None:
            raise IncasemError(
                "resume without an id needs output.group (which prediction to continue)"
            )
        if self.resume is not None and self.resume is not True and self.output_group is not None:
            raise IncasemError("give either resume=<id> or output.group, not both")
        return self

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **extra: Any) -> PredictionSettings:
        """Settings from a Sacred configuration shaped like `DEFAULT_CONFIG` (a missing or null
        value takes the field's default; a key under a field's old name is read, with a
        deprecation line, and wins over the default)."""
        values = {}
        for name in cls.model_fields:
            key = cls.config_key(name)
            if key is None:
                continue
            value = _get_dotted(config, key)
            for old in cls.old_config_keys(name):
                if _get_dotted(config, old) is not None:
                    deprecated(old, key)
                    value = _get_dotted(config, old)
            if value is not None:
                values[name] = value
        return cls(**values, **extra)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy, recorded in the outputs' provenance."""
        return self.model_dump()

    def replace(self, **changes: Any) -> PredictionSettings:
        """A validated copy with some values changed (by field name, or an old name)."""
        values = self.model_dump()
        for given in changes:
            values.pop(self.field_of(given) or given, None)
        return PredictionSettings(**values, **changes)


def _get_dotted(config: Mapping[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _default_config() -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, item in PredictionSettings.model_fields.items():
        key = PredictionSettings.config_key(name)
        if key is None:
            continue
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = item.default
    return config


#: The Sacred configuration with every key and its default (``configs/prediction.yaml`` is the
#: same with comments; a test keeps the two equal). Built from the settings' fields.
DEFAULT_CONFIG: dict[str, Any] = _default_config()


def default_config() -> dict[str, Any]:
    """A fresh copy of `DEFAULT_CONFIG`."""
    return copy.deepcopy(DEFAULT_CONFIG)
