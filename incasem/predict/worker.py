"""A prediction worker: load the model once, then predict blocks until the scheduler runs dry.

One process per worker, whoever starts it: daisy's local worker process calls `run_worker`
directly, and a cluster template (``srun ... {command}``) runs ``python -m
incasem.predict.worker SPEC.json`` on another machine, which calls the same function. Either
way the process finds the scheduler through daisy's ``DAISY_CONTEXT`` environment variable.

The GPU is chosen from the worker id (worker i gets ``gpus[i % len(gpus)]``) by setting
``CUDA_VISIBLE_DEVICES`` before torch touches CUDA. On the CPU, torch gets the worker's share of
the cores, so N workers do not oversubscribe the machine.

Blocks come through the one client loop of every blockwise job (`incasem.blockwise.worker`):
while a block is on the network, the next one is read and the previous one written by two
threads (`incasem.blockwise.overlap`), so a worker's time per block approaches the longest of
read, compute and write rather than their sum. A block that raises is reported to the scheduler
with its ROI in voxels and its error, in the wording of every blockwise job (it is retried up to
the task's ``max_retries``, then counted as failed) and the worker moves on to the next block
with its model still loaded. A worker that dies
(killed, out of memory) is restarted by daisy, and its unfinished blocks are handed out again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import daisy.v2 as daisy
import numpy as np
from funlib.geometry import Roi

from incasem.blockwise.failures import BlockFailures, block_subject
from incasem.blockwise.overlap import BlockStages
from incasem.blockwise.worker import serve, worker_context
from incasem.digest import file_sha256
from incasem.errors import IncasemError
from incasem.io import open_array
from incasem.io.data_config import DataEntry
from incasem.launch import worker_arguments
from incasem.predict.block import flip_axes, forward_block, read_block_input
from incasem.predict.geometry import BlockLayout
from incasem.predict.store import BlockStore

logger = logging.getLogger("incasem.predict.worker")


@dataclass
class WorkerSpec:
    """What a worker needs to predict the blocks of one entry (JSON-serialisable).

    Attributes:
        checkpoint: checkpoint file.
        checkpoint_sha256: its digest; a worker refuses a file that changed since planning.
        device: ``"cpu"`` or ``"cuda"``.
        gpus: GPU indices to spread workers over, or None.
        threads: torch CPU threads per worker.
        deterministic: oneDNN off and one thread on the CPU, deterministic cuDNN on GPUs.
        entry: the data-config entry (`DataEntry` fields).
        data_root: folder the entry's relative ``file`` is joined to.
        layout: `BlockLayout.describe` of the block geometry.
        normalisation: the card's raw normalisation.
        output_container: where the datasets are.
        probabilities: probability dataset per class.
        segmentation: class-id dataset.
        probability_dtype: ``"uint8"`` or ``"float32"``.
        threshold: foreground threshold for two classes.
        metrics_dir: folder for per-block metric counts, or None for no metrics.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (autocast).
        failures_dir: where workers record failed blocks (`incasem.blockwise.BlockFailures`),
            or None for nowhere.
        flips: average the probabilities over flips of each block (`flip_axes`).
    """

    checkpoint: str
    checkpoint_sha256: str
    device: str
    gpus: list[int] | None
    threads: int
    deterministic: bool
    entry: dict[str, Any]
    data_root: str | None
    layout: dict[str, list[int]]
    normalisation: dict[str, Any]
    output_container: str
    probabilities: list[str]
    segmentation: str
    probability_dtype: str
    threshold: float
    metrics_dir: str | None
    precision: str = "float32"
    failures_dir: str | None = None
    flips: bool = False

    def save(self, path: Path) -> None:
        """Write the spec as JSON (workers on other machines read it from a shared folder)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> WorkerSpec:
        """Read a spec written by `save`."""
        return cls(**json.loads(Path(path).read_text()))


def _select_device(spec: WorkerSpec, worker_id: int) -> str:
    """Pin the worker's GPU (before CUDA initialises) and return the torch device string."""
    if spec.device != "cuda":
        return "cpu"
    if spec.gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(spec.gpus[worker_id % len(spec.gpus)])
    return "cuda:0" if spec.gpus else "cuda"


class BlockProcessor:
    """Reads, predicts, writes and (optionally) scores blocks of one entry.

    The three stages are separate methods so that `incasem.blockwise.overlap.run_blocks` can run
    them for consecutive blocks at the same time (read ahead, compute, write behind).

    Args:
        spec: the worker spec.
        model: the loaded network, on ``device``, in eval mode.
        device: torch device string.
    """

    def __init__(self, spec: WorkerSpec, model: Any, device: str):
        self.spec = spec
        self.model = model
        self.device = device
        self.entry = DataEntry(**spec.entry)
        self.roi: Roi = self.entry.roi
        self.layout = BlockLayout.from_description(spec.layout)
        self.raw = open_array(self.entry.path(spec.data_root), self.entry.raw)
        self.store = BlockStore(
            self.entry,
            spec.data_root,
            spec.output_container,
            spec.probabilities,
            spec.segmentation,
            spec.probability_dtype,
            spec.threshold,
            spec.metrics_dir,
        )
        self.pin = device.startswith("cuda")
        self.flips = flip_axes(self.layout.voxel_size) if spec.flips else [()]

    def read(self, block: daisy.Block) -> Any:
        """The block's normalised network input (pinned host memory for a GPU)."""
        x = read_block_input(self.raw, block.write_roi, self.layout, self.spec.normalisation)
        if not self.pin:
            return x
        import torch

        return torch.from_numpy(x).pin_memory()

    def compute(self, block: daisy.Block, x: Any) -> np.ndarray:
        """Probabilities (classes, z, y, x) of the block's write ROI clipped to the entry."""
        roi = block.write_roi.intersect(self.roi)
        return forward_block(
            self.model, x, roi, self.layout, self.device, self.spec.precision, self.flips
        )

    def write(self, block: daisy.Block, probabilities: np.ndarray) -> None:
        """Classify, store probabilities and classes, and the block's metric counts."""
        self.store.write(block.write_roi.intersect(self.roi), probabilities, block.block_id[1])

    def subject(self, write_roi: Roi) -> str:
        """How a failure names a block: its write ROI clipped to the entry, in voxels
        (`incasem.blockwise.failures.block_subject`)."""
        return block_subject(write_roi.intersect(self.roi), self.layout.voxel_size)

    def stages(self) -> BlockStages[daisy.Block]:
        """The read, compute and write stages for `run_blocks`."""
        return BlockStages(self.read, self.compute, self.write)


def _load_model(spec: WorkerSpec, device: str) -> Any:
    from incasem.torch.checkpoint import load_checkpoint
    from incasem.torch.models import place_model

    digest = file_sha256(spec.checkpoint)
    if digest != spec.checkpoint_sha256:
        raise IncasemError(
            f"{spec.checkpoint} changed since the prediction was planned (sha256 {digest[:12]} "
            f"!= {spec.checkpoint_sha256[:12]}); start a new prediction"
        )
    checkpoint = load_checkpoint(spec.checkpoint, map_location=device)
    return place_model(checkpoint.model, device).eval()


def run_worker(spec: WorkerSpec) -> None:
    """Connect to the daisy scheduler (``DAISY_CONTEXT``) and process blocks until none are left,
    in the one client loop of every blockwise job (`incasem.blockwise.worker.serve`): one block
    is read ahead and one written behind while a block computes."""
    context, worker_id = worker_context()
    failures = BlockFailures(spec.failures_dir)
    try:
        processor = _start(spec, worker_id)
    except Exception as e:  # recorded for the driver's one line, then daisy restarts the worker
        failures.record(f"worker {worker_id}", e)
        raise
    serve(context, processor.stages(), processor.subject, failures)


def _start(spec: WorkerSpec, worker_id: int) -> BlockProcessor:
    """Torch settings, the model on this worker's device, and the block processor."""
    device = _select_device(spec, worker_id)

    import torch

    if spec.deterministic:
        torch.backends.mkldnn.enabled = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    if device == "cpu":
        torch.set_num_threads(1 if spec.deterministic else max(1, spec.threads))
    model = _load_model(spec, device)
    processor = BlockProcessor(spec, model, device)
    logger.info(
        "model %s loaded on %s (%d torch threads, %s)",
        spec.checkpoint,
        device if spec.device == "cpu" else f"GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '?')}",
        torch.get_num_threads(),
        spec.precision,
    )
    return processor


def main(argv: list[str] | None = None) -> int:
    """``python -m incasem.predict.worker SPEC.json``: a worker started by a cluster template."""
    argv = worker_arguments(argv)
    if len(argv) != 1:
        print("usage: python -m incasem.predict.worker SPEC.json", file=sys.stderr)
        return 2
    run_worker(WorkerSpec.load(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
