"""What a prediction run is asked to do: one validated settings object, two ways to fill it.

The command line (Sacred configuration, ``with key=value``) and the library API
(`incasem.predict.predict`) both end in `PredictionSettings`, a pydantic model like training's
`TrainingConfig`, which checks every value before any work starts and states the first problem
in one line (`IncasemError`). Each field names its Sacred configuration key once (`_key`); the
defaults
(`DEFAULT_CONFIG`), the reading of a configuration (`PredictionSettings.from_config`) and the
command line's flags (`incasem.cli.predict`) follow from those pairs. The configuration keeps the
original incasem keys (``prediction.data``, ``prediction.checkpoint``,
``prediction.input_size_voxels``, ``prediction.output_size_voxels``, ``prediction.num_workers``,
``prediction.log_metrics``, ``prediction.torch.device``, ``directories.data``) so their users'
command lines keep working, and adds the new ones. ``configs/prediction.yaml`` is the same
configuration with comments (a test keeps the two equal).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incasem.errors import IncasemError
from incasem.launch import check_template

PROBABILITY_DTYPES = ("uint8", "float32")
#: Inference precisions; `incasem.predict.block.forward_block` applies them.
PRECISIONS = ("float32", "bfloat16", "float16")
#: Voxel sizes outputs can be written at (`incasem.predict.resample`).
OUTPUT_VOXEL_SIZES = ("data", "model")


def _key(key: str, default: Any) -> Any:
    """A settings field whose Sacred configuration key is ``key`` (dotted) — the one place
    where a setting and its key are paired; `DEFAULT_CONFIG`, `PredictionSettings.from_config`
    and the command line's flags all follow from it."""
    return Field(default=default, json_schema_extra={"key": key})


def _get_dotted(config: Mapping[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class PredictionSettings(BaseModel):
    """Everything a prediction run needs; sizes in voxels (z, y, x).

    Attributes:
        checkpoint: checkpoint file (``.pt``); or give ``run_id``.
        run_id: training run under ``runs_dir`` whose checkpoint to use.
        iteration: with ``run_id``: an iteration, or ``"best"`` (``best.json``); default the
            best checkpoint if the run has one, else the latest.
        runs_dir: folder of training runs (``directories.runs``).
        data: data-config JSON file(s), a list or one comma-separated string; or give ``input``.
        data_root: folder that relative ``file`` paths in data configs are joined to.
        input: a container to predict (instead of ``data``).
        dataset: raw dataset inside ``input``.
        roi: with ``input``: ``[z, y, x, dz, dy, dx]`` offset and shape in voxels; default the
            whole dataset.
        input_size_voxels: network input per block (voxels, z y x); default the smallest valid
            size whose output covers both the training output and 110 voxels; ``"auto"``: the
            largest block whose forward pass fits the memory per worker (fastest; see
            `incasem.predict.block_size`).
        output_size_voxels: if given, must equal the network's output for
            ``input_size_voxels`` (kept from the original configuration as a check).
        num_workers: daisy worker processes; each loads the model once.
        gpus: GPU indices; worker i uses ``gpus[i % len(gpus)]``.
        workers_per_gpu: if given, ``num_workers`` becomes this many per GPU in ``gpus`` (one
            GPU if ``gpus`` is not given): several workers keep one GPU busier.
        precision: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` to run the network under
            torch autocast (faster on GPUs; see docs/howto/prediction.md for the measured change).
        worker_command: launch each worker through this template, e.g.
            ``"srun --gpus=1 {command}"``; ``{command}`` becomes the shell-quoted worker command.
        scheduler_host: address the scheduler listens on and workers connect to.
        log_metrics: score the prediction against the entries' labels while predicting.
        threshold: probability from which a voxel is foreground (two classes); default the
            model's calibrated threshold (its card), or 0.5 for a model without one.
        probabilities: ``"uint8"`` (p * 255, rounded) or ``"float32"``.
        output: container to write into; default each entry's own container.
        output_group: group for the outputs; default
            ``volumes/predictions/<model>/predict_<new id>``.
        output_voxel_size: for data at a whole fraction of the model's voxel size (e.g. 5 nm
            data, 10 nm model; the input is averaged to the model's): ``"data"`` writes the
            outputs at the data's voxel size (linear upsampling, `incasem.predict.resample`),
            ``"model"`` at the model's.
        resume: continue an interrupted prediction: its id, or True with ``output_group``.
        overwrite: replace existing outputs (an explicit ``output_group``, or a resumed
            prediction whose inputs changed).
        deterministic: bit-identical results whatever the block layout and worker count
            (CPU: oneDNN off, one thread per worker; several times slower).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a GPU index.
        block_timeout: seconds before a block's worker is killed and the block retried;
            default derived from the block size.
        max_retries: attempts per block after the first.
        progress: show a progress bar.
        sacred_run_id: recorded in the outputs' provenance when run through Sacred.
    """

    checkpoint: str | None = _key("prediction.checkpoint", None)
    run_id: int | None = _key("prediction.run_id_training", None)
    iteration: int | str | None = _key("prediction.iteration", None)
    runs_dir: str = _key("directories.runs", "runs")
    data: str | list[str] | None = _key("prediction.data", None)
    data_root: str | None = _key("directories.data", None)
    input: str | None = _key("prediction.input", None)
    dataset: str = _key("prediction.dataset", "volumes/raw")
    roi: list[int] | None = _key("prediction.roi", None)
    input_size_voxels: list[int] | str | None = _key("prediction.input_size_voxels", None)
    output_size_voxels: list[int] | None = _key("prediction.output_size_voxels", None)
    num_workers: int = _key("prediction.num_workers", 1)
    gpus: list[int] | None = _key("prediction.gpus", None)
    workers_per_gpu: int | None = _key("prediction.workers_per_gpu", None)
    precision: str = _key("prediction.precision", "float32")
    worker_command: str | None = _key("prediction.worker_command", None)
    scheduler_host: str = _key("prediction.scheduler_host", "127.0.0.1")
    log_metrics: bool = _key("prediction.log_metrics", False)
    threshold: float | None = _key("prediction.threshold", None)
    probabilities: str = _key("prediction.probabilities", "uint8")
    output: str | None = _key("prediction.output.container", None)
    output_group: str | None = _key("prediction.output.group", None)
    output_voxel_size: str = _key("prediction.output.voxel_size", "data")
    resume: int | bool | None = _key("prediction.resume", None)
    overwrite: bool = _key("prediction.overwrite", False)
    deterministic: bool = _key("prediction.deterministic", False)
    device: str | int = _key("prediction.torch.device", "auto")
    block_timeout: float | None = _key("prediction.block_timeout", None)
    max_retries: int = _key("prediction.max_retries", 2)
    progress: bool = True
    sacred_run_id: int | str | None = None

    # Values are checked by the validators below, which raise `IncasemError` (pydantic passes
    # it through); a value of the wrong type altogether is turned into one by `__init__`.
    model_config = ConfigDict(extra="forbid")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise IncasemError(_first_problem(e)) from None

    def __eq__(self, other: object) -> bool:
        """Equal settings ask for the same prediction (the Sacred run id is not compared)."""
        if not isinstance(other, PredictionSettings):
            return NotImplemented
        return self.model_dump(exclude={"sacred_run_id"}) == other.model_dump(
            exclude={"sacred_run_id"}
        )

    __hash__ = None  # type: ignore[assignment]

    @field_validator("roi", mode="before")
    @classmethod
    def _roi(cls, value: Any) -> list[int] | None:
        if value is None:
            return None
        roi = _ints(value, 6, "roi")
        if min(roi[3:]) < 1:
            raise IncasemError(f"roi {roi}: the shape (last three values) must be > 0")
        return roi

    @field_validator("input_size_voxels", mode="before")
    @classmethod
    def _input_size(cls, value: Any) -> list[int] | str | None:
        # "auto", or ["auto"] from a YAML list or the command line
        if isinstance(value, Sequence) and (value == "auto" or list(value) == ["auto"]):
            return "auto"
        return None if value is None else _ints(value, 3, "input_size_voxels")

    @field_validator("output_size_voxels", mode="before")
    @classmethod
    def _output_size(cls, value: Any) -> list[int] | None:
        return None if value is None else _ints(value, 3, "output_size_voxels")

    @field_validator("num_workers", "workers_per_gpu", mode="before")
    @classmethod
    def _positive(cls, value: Any, info: Any) -> int | None:
        if value is None and info.field_name == "workers_per_gpu":
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise IncasemError(f"{info.field_name} must be a positive integer, got {value!r}")
        return value

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> list[int] | None:
        return None if value is None else parse_gpus(value)

    @field_validator("precision", "probabilities", "output_voxel_size", mode="before")
    @classmethod
    def _choice(cls, value: Any, info: Any) -> str:
        choices = {
            "precision": PRECISIONS,
            "probabilities": PROBABILITY_DTYPES,
            "output_voxel_size": OUTPUT_VOXEL_SIZES,
        }[info.field_name]
        if value not in choices:
            raise IncasemError(f"{info.field_name} must be one of {choices}, got {value!r}")
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        if value is not None and not 0.0 < float(value) < 1.0:
            raise IncasemError(f"threshold must lie in (0, 1), got {value}")
        return value

    @field_validator("iteration", mode="before")
    @classmethod
    def _iteration(cls, value: Any) -> int | str | None:
        if value is None or value == "best":
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise IncasemError(f"iteration must be an integer or 'best', got {value!r}") from None

    @field_validator("resume", mode="before")
    @classmethod
    def _resume(cls, value: Any) -> int | bool | None:
        if value is not None and not isinstance(value, bool | int):
            raise IncasemError(f"resume must be a prediction id (integer), got {value!r}")
        return value

    @field_validator("worker_command", mode="before")
    @classmethod
    def _template(cls, value: Any) -> str | None:
        check_template(value, "worker_command")
        return value

    @field_validator("block_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        if value is not None and float(value) <= 0:
            raise IncasemError(f"block_timeout must be positive, got {value}")
        return value

    @field_validator("max_retries", mode="before")
    @classmethod
    def _retries(cls, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise IncasemError(f"max_retries must be >= 0, got {value!r}")
        return value

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
        value takes the field's default)."""
        values = {}
        for name in cls.model_fields:
            key = config_key(name)
            value = _get_dotted(config, key) if key else None
            if value is not None:
                values[name] = value
        return cls(**values, **extra)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy, recorded in the outputs' provenance."""
        return self.model_dump()

    def replace(self, **changes: Any) -> PredictionSettings:
        """A validated copy with some values changed."""
        return PredictionSettings(**(self.model_dump() | changes))


def config_key(name: str) -> str | None:
    """The dotted Sacred configuration key of the settings field ``name`` (None for a field
    without one, such as ``progress``, or a name that is no field)."""
    item = PredictionSettings.model_fields.get(name)
    extra = item.json_schema_extra if item is not None else None
    return extra.get("key") if isinstance(extra, dict) else None


def _first_problem(error: ValidationError) -> str:
    """One line for the first value of a wrong type (``num_workers must be ... got 'x'``)."""
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    key = config_key(name)
    where = f"{name} ({key})" if key else name
    if first["type"] == "extra_forbidden":
        return f"unknown setting {name!r}"
    return f"{where}: {first['msg']}, got {first.get('input')!r}"


def _default_config() -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, item in PredictionSettings.model_fields.items():
        key = config_key(name)
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


def _ints(value: Any, length: int, name: str) -> list[int]:
    if isinstance(value, int | str) or not isinstance(value, Sequence) or len(value) != length:
        raise IncasemError(f"{name} must be {length} integers (voxels, z y x), got {value!r}")
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise IncasemError(f"{name} must be {length} integers, got {value!r}") from None


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
