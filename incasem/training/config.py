"""The training configuration: every key, its default and its check.

Key names are the original incasem's (``training.data``, ``training.input_size_voxels``,
``model.num_fmaps``, ``torch.device`` ...) so its users' configs and habits carry over; new keys
are additive. The schema is pydantic with unknown keys forbidden, so a typo such as
``training.iteration=100`` fails before any work with a line naming the key, instead of being
silently ignored. ``configs/training.yaml`` documents every key; a test keeps it equal to these
defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incasem.errors import IncasemError

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Size3 = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]


def _none_spelled_out(value: Any) -> Any:
    # Sacred passes `key=null` from the command line as the string "null"; YAML spells None so.
    if isinstance(value, str) and value.strip().lower() in ("null", "none", "~", ""):
        return None
    return value


def _accepts_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(_accepts_list(arg) for arg in get_args(annotation))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _lists_spelled_out(cls, data: Any) -> Any:
        # The original's command lines give lists as `with data.class_names=[background,mito]`;
        # Sacred keeps what Python cannot read as a literal as the string "[background,mito]".
        # YAML's flow syntax reads it as the list it means.
        if not isinstance(data, dict):
            return data
        parsed = {}
        for key, value in data.items():
            field = cls.model_fields.get(key)
            if (
                field is not None
                and isinstance(value, str)
                and value.strip().startswith("[")
                and _accepts_list(field.annotation)
            ):
                try:
                    value = yaml.safe_load(value)
                except yaml.YAMLError:
                    pass  # the field's own check names the key and the value
            parsed[key] = value
        return parsed


class Directories(_Section):
    runs: str = "runs"
    data: str = "."


class Optimizer(_Section):
    lr: Annotated[float, Field(gt=0)] = 3e-5
    weight_decay: Annotated[float, Field(ge=0)] = 3e-5
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_iterations: Annotated[int, Field(ge=0)] = 0
    final_lr_fraction: Fraction = 0.01


class Reject(_Section):
    min_masked: Fraction = 0.05
    reject_probability: Fraction = 0.9
    min_valid: Fraction = 0.5
    max_attempts: PositiveInt = 10000


_NonNegative3 = Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=3, max_length=3)]
_Positive3 = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=3, max_length=3)]


class Elastic(_Section):
    """Elastic deformation. Spacing and jitter are distances in the cell, so they are given in
    nm and converted with ``data.voxel_size`` (160 / 10 nm: the original's 32 / 2 voxels at
    5 nm); the original's voxel keys, when given, take their place."""

    enabled: bool = True
    control_point_spacing_nm: _Positive3 = [160.0, 160.0, 160.0]
    jitter_sigma_nm: _NonNegative3 = [10.0, 10.0, 10.0]
    control_point_spacing: Size3 | None = None
    jitter_sigma: _NonNegative3 | None = None
    # The original's ElasticAugment key; kept so its configs load. ElasticDeform computes the
    # displacement at full resolution at no extra cost, so there is nothing to subsample.
    subsample: PositiveInt = 4
    rotate_in_plane: bool = True

    def in_voxels(self, voxel_size: Sequence[int]) -> tuple[list[int], list[float]]:
        """Control-point spacing (whole voxels, at least 1) and jitter sigma (voxels), z y x,
        for data of ``voxel_size`` nm."""
        spacing = self.control_point_spacing or [
            max(1, round(d / v))
            for d, v in zip(self.control_point_spacing_nm, voxel_size, strict=True)
        ]
        jitter = self.jitter_sigma or [
            s / v for s, v in zip(self.jitter_sigma_nm, voxel_size, strict=True)
        ]
        return list(spacing), list(jitter)


class Simple(_Section):
    enabled: bool = True
    mirror: bool = True
    transpose: bool = True


class Intensity(_Section):
    enabled: bool = True
    scale: Annotated[float, Field(ge=0, lt=1)] = 0.15
    shift: Annotated[float, Field(ge=0, lt=1)] = 0.15


class Noise(_Section):
    enabled: bool = False
    var: Annotated[float, Field(ge=0)] = 0.001


class Gamma(_Section):
    enabled: bool = False
    min: Annotated[float, Field(gt=0)] = 0.8
    max: Annotated[float, Field(gt=0)] = 1.25


class Augmentation(_Section):
    elastic: Elastic = Elastic()
    simple: Simple = Simple()
    intensity: Intensity = Intensity()
    noise: Noise = Noise()
    gamma: Gamma = Gamma()


class Every(_Section):
    every: PositiveInt = 1000


class Precache(_Section):
    cache_size: PositiveInt = 4
    num_workers: PositiveInt = 1
    num_threads: PositiveInt | None = None
    prefetch: bool = True


class WeightAveraging(_Section):
    enabled: bool = False
    decay: Annotated[float, Field(gt=0, lt=1)] = 0.99


class Training(_Section):
    data: str | None = None
    iterations: PositiveInt = 20000
    max_minutes: Annotated[float, Field(gt=0)] | None = None
    input_size_voxels: Size3 = [204, 204, 204]
    output_size_voxels: Size3 = [110, 110, 110]
    save_every: PositiveInt = 1000
    log_every: PositiveInt = 1
    seed: int = 0
    optimizer: Optimizer = Optimizer()
    reject: Reject = Reject()
    augmentation: Augmentation = Augmentation()
    snapshot: Every = Every()
    profiling_stats: Every = Every()
    precache: Precache = Precache()
    weight_averaging: WeightAveraging = WeightAveraging()
    start_from: str | None = None
    continue_id: str | None = None

    _no_data = field_validator("data", "start_from", mode="before")(_none_spelled_out)


class Validation(_Section):
    data: str | None = None
    validate_every: PositiveInt = 1000
    input_size_voxels: Size3 | Literal["auto"] | None = None

    _no_data = field_validator("data", mode="before")(_none_spelled_out)


class Data(_Section):
    voxel_size: Size3 = [5, 5, 5]
    num_classes: Annotated[int, Field(ge=2)] = 2
    class_names: list[str] | None = None


class Model(_Section):
    type: str = "Unet"
    num_fmaps: PositiveInt = 32
    fmap_inc_factor: PositiveInt = 2
    downsample_factors: list[Size3] = [[2, 2, 2], [2, 2, 2], [2, 2, 2]]
    constant_upsample: bool = True
    initialisation: Literal["kaiming", "pytorch"] = "kaiming"

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value != "Unet":
            raise ValueError("only 'Unet' is available")
        return value


class BalanceLabels(_Section):
    enabled: bool = True
    clipmin: Fraction = 0.01
    clipmax: Fraction = 0.99


class Loss(_Section):
    type: Literal["cross_entropy_scaling", "cross_entropy_dice"] = "cross_entropy_scaling"
    weight: list[Annotated[float, Field(ge=0)]] | None = None
    balance_labels: BalanceLabels = BalanceLabels()


class Torch(_Section):
    device: str | int = "cpu"

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | int) -> str:
        if isinstance(value, int) or str(value).isdigit():
            return f"cuda:{int(value)}"
        if value == "cpu" or str(value).startswith("cuda"):
            return str(value)
        raise ValueError("expected 'cpu', a GPU index (0, 1, ...) or 'cuda:N'")


class Sacred(_Section):
    log_every: PositiveInt = 100


class TrainingConfig(_Section):
    """The whole training configuration (Sacred's config dict, validated)."""

    directories: Directories = Directories()
    training: Training = Training()
    validation: Validation = Validation()
    data: Data = Data()
    model: Model = Model()
    loss: Loss = Loss()
    torch: Torch = Torch()
    sacred: Sacred = Sacred()

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        names = self.data.class_names
        if names is not None and len(names) != self.data.num_classes:
            raise ValueError(
                f"data.class_names has {len(names)} names but data.num_classes is "
                f"{self.data.num_classes}"
            )
        if self.loss.weight is not None and len(self.loss.weight) != self.data.num_classes:
            raise ValueError(
                f"loss.weight has {len(self.loss.weight)} values but data.num_classes is "
                f"{self.data.num_classes}"
            )
        return self

    @property
    def class_names(self) -> list[str]:
        """Channel names, background first; default ``background, class_1, ...``."""
        return self.data.class_names or ["background"] + [
            f"class_{i}" for i in range(1, self.data.num_classes)
        ]


def default_config() -> dict[str, Any]:
    """All keys with their defaults, as Sacred's base config."""
    return TrainingConfig().model_dump()


def parse_config(config: dict[str, Any]) -> TrainingConfig:
    """Validate a (Sacred) config dict; raises `IncasemError` with one line per problem."""
    config = {k: v for k, v in config.items() if k != "seed"}  # Sacred adds its own seed
    try:
        return TrainingConfig.model_validate(config)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown config key '{key}'")
            elif not key:
                problems.append(error["msg"].removeprefix("Value error, "))
            elif error.get("input") == "auto":
                problems.append(
                    f"config key '{key}' = 'auto' is planned from the training data by "
                    "scripts/train.py (in Python: incasem.training.plan.resolve_auto)"
                )
            else:
                value = error.get("input")
                shown = f" = {value!r}" if not isinstance(value, dict) else ""
                problems.append(f"config key '{key}'{shown}: {error['msg']}")
        raise IncasemError("; ".join(problems)) from None
