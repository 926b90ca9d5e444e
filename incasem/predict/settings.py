"""What a prediction run is asked to do: one validated settings object, two ways to fill it.

The command line (Sacred configuration, ``with key=value``) and the library API
(`incasem.predict.predict`) both end in `PredictionSettings`, which checks every value before
any work starts. `DEFAULT_CONFIG` is the Sacred configuration with its defaults; it keeps the
original incasem keys (``prediction.data``, ``prediction.checkpoint``,
``prediction.input_size_voxels``, ``prediction.output_size_voxels``, ``prediction.num_workers``,
``prediction.log_metrics``, ``prediction.torch.device``, ``directories.data``) so their users'
command lines keep working, and adds the new ones. ``configs/prediction.yaml`` is the same
configuration with comments (a test keeps the two equal).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from incasem.errors import IncasemError
from incasem.launch import check_template

PROBABILITY_DTYPES = ("uint8", "float32")

DEFAULT_CONFIG: dict[str, Any] = {
    "directories": {"data": None, "runs": "runs"},
    "prediction": {
        "data": None,
        "checkpoint": None,
        "run_id_training": None,
        "iteration": None,
        "input": None,
        "dataset": "volumes/raw",
        "roi": None,
        "input_size_voxels": None,
        "output_size_voxels": None,
        "num_workers": 1,
        "gpus": None,
        "worker_command": None,
        "scheduler_host": "127.0.0.1",
        "log_metrics": False,
        "threshold": None,
        "probabilities": "uint8",
        "output": {"container": None, "group": None},
        "resume": None,
        "overwrite": False,
        "deterministic": False,
        "block_timeout": None,
        "max_retries": 2,
        "torch": {"device": "auto"},
    },
}


def default_config() -> dict[str, Any]:
    """A fresh copy of `DEFAULT_CONFIG`."""
    return copy.deepcopy(DEFAULT_CONFIG)


@dataclass
class PredictionSettings:
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

    checkpoint: str | None = None
    run_id: int | None = None
    iteration: int | str | None = None
    runs_dir: str = "runs"
    data: str | list[str] | None = None
    data_root: str | None = None
    input: str | None = None
    dataset: str = "volumes/raw"
    roi: list[int] | None = None
    input_size_voxels: list[int] | str | None = None
    output_size_voxels: list[int] | None = None
    num_workers: int = 1
    gpus: list[int] | None = None
    worker_command: str | None = None
    scheduler_host: str = "127.0.0.1"
    log_metrics: bool = False
    threshold: float | None = None
    probabilities: str = "uint8"
    output: str | None = None
    output_group: str | None = None
    resume: int | bool | None = None
    overwrite: bool = False
    deterministic: bool = False
    device: str | int = "auto"
    block_timeout: float | None = None
    max_retries: int = 2
    progress: bool = True
    sacred_run_id: int | str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every value; raises `IncasemError` naming the first bad one."""
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
        if self.roi is not None:
            self.roi = _ints(self.roi, 6, "roi")
            if min(self.roi[3:]) < 1:
                raise IncasemError(f"roi {self.roi}: the shape (last three values) must be > 0")
        size = self.input_size_voxels  # "auto", or ["auto"] from a YAML list or the CLI
        if isinstance(size, Sequence) and (size == "auto" or list(size) == ["auto"]):
            self.input_size_voxels = "auto"
        elif size is not None:
            self.input_size_voxels = _ints(size, 3, "input_size_voxels")
        if self.output_size_voxels is not None:
            self.output_size_voxels = _ints(self.output_size_voxels, 3, "output_size_voxels")
        if not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise IncasemError(f"num_workers must be a positive integer, got {self.num_workers!r}")
        if self.gpus is not None:
            self.gpus = parse_gpus(self.gpus)
        if self.probabilities not in PROBABILITY_DTYPES:
            raise IncasemError(
                f"probabilities must be one of {PROBABILITY_DTYPES}, got {self.probabilities!r}"
            )
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise IncasemError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.iteration is not None and self.iteration != "best":
            try:
                self.iteration = int(self.iteration)
            except (TypeError, ValueError):
                raise IncasemError(
                    f"iteration must be an integer or 'best', got {self.iteration!r}"
                ) from None
        if self.resume is not None and not isinstance(self.resume, bool | int):
            raise IncasemError(f"resume must be a prediction id (integer), got {self.resume!r}")
        if self.resume is True and self.output_group is None:
            raise IncasemError(
                "resume without an id needs output.group (which prediction to continue)"
            )
        if self.resume is not None and self.resume is not True and self.output_group is not None:
            raise IncasemError("give either resume=<id> or output.group, not both")
        check_template(self.worker_command, "worker_command")
        if self.block_timeout is not None and float(self.block_timeout) <= 0:
            raise IncasemError(f"block_timeout must be positive, got {self.block_timeout}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise IncasemError(f"max_retries must be >= 0, got {self.max_retries!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **extra: Any) -> PredictionSettings:
        """Settings from a Sacred configuration shaped like `DEFAULT_CONFIG`."""
        p = config["prediction"]
        output = p.get("output") or {}
        return cls(
            checkpoint=p.get("checkpoint"),
            run_id=p.get("run_id_training"),
            iteration=p.get("iteration"),
            runs_dir=config["directories"].get("runs") or "runs",
            data=p.get("data"),
            data_root=config["directories"].get("data"),
            input=p.get("input"),
            dataset=p.get("dataset") or "volumes/raw",
            roi=p.get("roi"),
            input_size_voxels=p.get("input_size_voxels"),
            output_size_voxels=p.get("output_size_voxels"),
            num_workers=p.get("num_workers", 1),
            gpus=p.get("gpus"),
            worker_command=p.get("worker_command"),
            scheduler_host=p.get("scheduler_host") or "127.0.0.1",
            log_metrics=bool(p.get("log_metrics", False)),
            threshold=p.get("threshold"),
            probabilities=p.get("probabilities", "uint8"),
            output=output.get("container"),
            output_group=output.get("group"),
            resume=p.get("resume"),
            overwrite=bool(p.get("overwrite", False)),
            deterministic=bool(p.get("deterministic", False)),
            device=(p.get("torch") or {}).get("device", "auto"),
            block_timeout=p.get("block_timeout"),
            max_retries=p.get("max_retries", 2),
            **extra,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy, recorded in the outputs' provenance."""
        return asdict(self)

    def replace(self, **changes: Any) -> PredictionSettings:
        """A validated copy with some values changed."""
        return PredictionSettings(**(asdict(self) | changes))


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
