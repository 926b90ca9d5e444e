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
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incasem.errors import IncasemError
from incasem.pipeline.extra_nodes import ExtraNode
from incasem.pipeline.settings import (
    AugmentationSettings,
    BalanceSettings,
    DefectSettings,
    ElasticSettings,
    GammaSettings,
    IntensitySettings,
    NoiseSettings,
    PipelineSettings,
    PrecacheSettings,
    RejectSettings,
    SimpleSettings,
)

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Size3 = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
_T = TypeVar("_T", bound=BaseModel)


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
    # The original's folder of its mock MongoDB; kept so its configs load. Runs are recorded
    # under ``runs`` (and in MongoDB with --mongodb).
    db: str | None = None


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
    # The original's key: the axes (0 = z, 1 = y, 2 = x) that may be swapped. Of these, only
    # axes sharing the most common voxel size are swapped (`incasem.pipeline.training`).
    transpose_only: list[Annotated[int, Field(ge=0, le=2)]] | None = None


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


class Defect(_Section):
    """Serial-section defects (gunpowder's ``DefectAugment``), section by section along z:
    a whole z-section goes missing (set to 0) or loses contrast (scaled about its mean).
    Off by default: isotropic FIB-SEM has no such sections."""

    enabled: bool = False
    prob_missing: Fraction = 0.03
    prob_low_contrast: Fraction = 0.03
    contrast_scale: Fraction = 0.1

    @model_validator(mode="after")
    def _probabilities(self) -> Defect:
        if self.prob_missing + self.prob_low_contrast > 1:
            raise ValueError(
                "training.augmentation.defect: prob_missing + prob_low_contrast exceeds 1"
            )
        return self


class Augmentation(_Section):
    elastic: Elastic = Elastic()
    simple: Simple = Simple()
    intensity: Intensity = Intensity()
    noise: Noise = Noise()
    gamma: Gamma = Gamma()
    defect: Defect = Defect()


class Pipeline(_Section):
    extra_nodes: list[ExtraNode] = []

    @model_validator(mode="before")
    @classmethod
    def _original_name(cls, data: Any) -> Any:
        # The original names its only pipeline: training.pipeline=baseline_with_context.
        if data == "baseline_with_context":
            return {}
        if isinstance(data, str):
            raise ValueError(
                "the training pipeline is 'baseline_with_context'; add nodes to it with "
                "training.pipeline.extra_nodes"
            )
        return data


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
    pipeline: Pipeline = Pipeline()
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
    # The original's key naming its (only) validation pipeline; kept so its configs load.
    pipeline: Literal["baseline_with_context"] | None = None
    data: str | None = None
    validate_every: PositiveInt = 1000
    input_size_voxels: Size3 | Literal["auto"] | None = None
    # The original's key: given, it must equal the network's output for input_size_voxels.
    output_size_voxels: Size3 | None = None
    # The original's validation snapshots (every N validations); kept so its configs load:
    # validation writes scores and curves, no snapshots.
    snapshot: Every = Every(every=10)

    _no_data = field_validator("data", mode="before")(_none_spelled_out)


class Data(_Section):
    voxel_size: Size3 = [5, 5, 5]
    num_classes: Annotated[int, Field(ge=2)] = 2
    class_names: list[str] | None = None
    # The original's Downsample node; only 1 (none): downsample the data itself instead.
    downsample_factor: int | None = None

    @field_validator("downsample_factor")
    @classmethod
    def _no_downsampling(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError(
                "only 1: write a downsampled copy of the data (incasem pyramid) and train at "
                "its voxel size"
            )
        return value


class Model(_Section):
    type: str = "Unet"
    num_fmaps: PositiveInt = 32
    # The original's key for the output channels; given, it must equal data.num_classes.
    num_fmaps_out: PositiveInt | None = None
    fmap_inc_factor: PositiveInt = 2
    downsample_factors: list[Size3] = [[2, 2, 2], [2, 2, 2], [2, 2, 2]]
    constant_upsample: bool = True
    initialisation: Literal["kaiming", "pytorch"] = "kaiming"
    # Recipe options; the defaults are ASEM's network (published weights load only into it).
    normalisation: Literal["none", "batch", "instance", "group"] = "none"
    residual: bool = False
    deep_supervision: bool = False

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


def _original_sources(value: Any) -> Any:
    if value != {"class": "DataSourcesSemantic"}:
        raise ValueError("the original's only value is {class: DataSourcesSemantic}")
    return value


class TrainingConfig(_Section):
    """The whole training configuration (Sacred's config dict, validated)."""

    directories: Directories = Directories()
    # The original's source class (unused there too); kept so its configs load.
    sources: dict[str, str] = {"class": "DataSourcesSemantic"}
    training: Training = Training()
    validation: Validation = Validation()
    data: Data = Data()
    model: Model = Model()
    loss: Loss = Loss()
    torch: Torch = Torch()
    sacred: Sacred = Sacred()

    _sources = field_validator("sources")(_original_sources)

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        outputs = self.model.num_fmaps_out
        if outputs is not None and outputs != self.data.num_classes:
            raise ValueError(
                f"model.num_fmaps_out is {outputs} but data.num_classes is "
                f"{self.data.num_classes} (the network has one output per class)"
            )
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

    def pipeline_settings(self) -> PipelineSettings:
        """What the training pipeline reads of this config (`incasem.pipeline.settings`)."""
        training = self.training
        return PipelineSettings(
            voxel_size=self.data.voxel_size,
            input_size_voxels=training.input_size_voxels,
            output_size_voxels=training.output_size_voxels,
            num_classes=self.data.num_classes,
            augmentation=_augmentation_settings(training.augmentation, self.data.voxel_size),
            reject=RejectSettings(**training.reject.model_dump()),
            balance=_enabled(self.loss.balance_labels, BalanceSettings),
            extra_nodes=training.pipeline.extra_nodes,
            precache=PrecacheSettings(**training.precache.model_dump()),
            seed=training.seed,
            snapshot_every=training.snapshot.every,
            profiling_every=training.profiling_stats.every,
            device=self.torch.device,
        )

    @property
    def class_names(self) -> list[str]:
        """Channel names, background first; default ``background, class_1, ...``."""
        return self.data.class_names or ["background"] + [
            f"class_{i}" for i in range(1, self.data.num_classes)
        ]


def _enabled(section: _Section, settings: type[_T]) -> _T | None:
    """The pipeline's settings of a section with an ``enabled`` key; None when it is off."""
    if not section.enabled:  # type: ignore[attr-defined]
        return None
    return settings(**section.model_dump(exclude={"enabled"}))


def _augmentation_settings(
    augment: Augmentation, voxel_size: Sequence[int]
) -> AugmentationSettings:
    """The augmentations for data of ``voxel_size`` nm (elastic distances in voxels)."""
    elastic = None
    if augment.elastic.enabled:
        spacing, jitter = augment.elastic.in_voxels(voxel_size)
        elastic = ElasticSettings(
            control_point_spacing=spacing,
            jitter_sigma=jitter,
            rotate_in_plane=augment.elastic.rotate_in_plane,
        )
    return AugmentationSettings(
        elastic=elastic,
        simple=_enabled(augment.simple, SimpleSettings),
        intensity=_enabled(augment.intensity, IntensitySettings),
        gamma=_enabled(augment.gamma, GammaSettings),
        noise=_enabled(augment.noise, NoiseSettings),
        defect=_enabled(augment.defect, DefectSettings),
    )


def default_config() -> dict[str, Any]:
    """All keys with their defaults, as Sacred's base config."""
    return TrainingConfig().model_dump()


def config_key(location: Sequence[str | int]) -> str:
    """The dotted config key of a location in the config tree, list items as ``[i]``:
    ``("training", "pipeline", "extra_nodes", 0, "class")`` ->
    ``training.pipeline.extra_nodes[0].class``."""
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def parse_config(config: dict[str, Any]) -> TrainingConfig:
    """Validate a (Sacred) config dict; raises `IncasemError` with one line per problem."""
    config = {k: v for k, v in config.items() if k != "seed"}  # Sacred adds its own seed
    try:
        return TrainingConfig.model_validate(config)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            key = config_key(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown config key '{key}'")
            elif not key:
                problems.append(message)
            elif error.get("input") == "auto":
                problems.append(
                    f"config key '{key}' = 'auto' is planned from the training data by "
                    "scripts/train.py (in Python: incasem.training.plan.resolve_auto)"
                )
            else:
                value = error.get("input")
                shown = f" = {value!r}" if not isinstance(value, dict) else ""
                problems.append(f"config key '{key}'{shown}: {message}")
        raise IncasemError("; ".join(problems)) from None
