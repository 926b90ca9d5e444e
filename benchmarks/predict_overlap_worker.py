"""The worker of `benchmarks/predict_overlap.py`: the prediction worker's own `BlockProcessor`
with a stand-in network, served by the one client loop of every blockwise job.

Run by the engine (`incasem.blockwise.run_job` with a `incasem.launch.ModuleWorker` of this
module), never by hand: ``main`` gets one JSON argument (``spec``: the `WorkerSpec` file,
``compute_s``: the stand-in's forward time per block, ``depth``: blocks read ahead and written
behind, ``times``: where the stage times go as JSON).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from incasem.blockwise import BlockFailures
from incasem.blockwise.worker import serve, worker_context
from incasem.predict.worker import BlockProcessor, WorkerSpec
from incasem.torch.models import shapes

FACTORS = [[2, 2, 2]] * 3


class FixedTimeNetwork(torch.nn.Module):
    """Sleeps ``seconds``, then returns logits (0, 3 x) where x is the normalised raw at each
    output voxel: real-looking probabilities, which compress like a real prediction's."""

    num_classes = 2

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        out = shapes.output_shape(tuple(x.shape[2:]), FACTORS, 3)
        begin = shapes.context(FACTORS, 3)
        crop = x[(..., *(slice(b, b + o) for b, o in zip(begin, out, strict=True)))]
        return torch.cat([torch.zeros_like(crop), 3 * crop], dim=1)


def main(argv: Sequence[str]) -> int:
    """Serve the blocks of the scheduler in ``DAISY_CONTEXT``; write the stage times."""
    (argument,) = argv
    args = json.loads(argument)
    torch.set_num_threads(1)
    spec = WorkerSpec.load(args["spec"])
    processor = BlockProcessor(spec, FixedTimeNetwork(args["compute_s"]), "cpu")
    context, _ = worker_context()
    depth = args["depth"]
    times = serve(context, processor.stages(), processor.subject, BlockFailures(None), depth)
    Path(args["times"]).write_text(json.dumps(asdict(times)))
    return 0
