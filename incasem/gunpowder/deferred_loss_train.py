"""A torch training step that does not wait for the GPU to finish it.

gunpowder's ``torch.Train`` ends every step with ``loss.cpu()``, which on a GPU blocks until the
step's kernels are done: the host cannot prepare the next request while the GPU computes, and
the accelerator idles for the host's share of every iteration. This node leaves the loss on the
device (``batch.loss`` is a 0-d tensor); whoever reads it (``float(batch.loss)``) waits for that
step only, so the training loop reads it one iteration late, once the next step is queued. The
inputs go to the GPU from pinned memory without blocking, for the same reason. On a CPU every
operation is synchronous and nothing changes but the type of ``batch.loss``.
"""

from __future__ import annotations

import gunpowder as gp
import numpy as np
import torch


class DeferredLossTrain(gp.torch.Train):
    """One optimiser step per batch for a network with one input and a three-argument loss.

    Everything gunpowder's ``torch.Train`` takes, with these mappings: ``inputs={"x": raw}``
    (the network's one input), ``outputs={0: prediction}`` and ``loss_inputs={0: prediction,
    1: labels, 2: scales}`` (the loss is called as ``loss(prediction, labels, scales)``).
    gunpowder's gradient outputs, intermediate layers and ``spawn_subprocess`` are not
    supported, and the per-step INFO log line is not written. The prediction is copied to the
    batch only when it is requested (snapshots). A model may return a tuple whose first entry
    is the prediction (deep supervision's extra logits follow it); the loss gets the tuple.

    Args:
        model (torch.nn.Module): the network.
        loss (torch.nn.Module): the loss.
        optimizer (torch.optim.Optimizer): the optimiser.
        inputs (dict): ``{"x": ArrayKey}``.
        outputs (dict): ``{0: ArrayKey}``.
        loss_inputs (dict): ``{0: prediction key, 1: labels key, 2: scales key}``.
        **kwargs: the rest of gunpowder's ``torch.Train`` arguments.

    After a step, ``batch.loss`` is the loss as a 0-d tensor on the training device (read it
    with ``float()``), and ``batch.iteration`` the step's number.
    """

    def __init__(self, model, loss, optimizer, inputs, outputs, loss_inputs, **kwargs):
        super().__init__(model, loss, optimizer, inputs, outputs, loss_inputs, **kwargs)
        self._input = inputs["x"]
        self._prediction = outputs[0]
        self._targets = (loss_inputs[1], loss_inputs[2])

    def _to_device(self, data: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(data))
        if self.device.type != "cuda":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def process(self, batch: gp.Batch, request: gp.BatchRequest) -> None:
        # gunpowder's process() also logs the loss with "%f", which reads it (waiting for the
        # GPU) whenever INFO is on; the step alone, in this process (no spawn_subprocess).
        self.train_step(batch, request)

    def train_step(self, batch: gp.Batch, request: gp.BatchRequest) -> None:
        x = self._to_device(batch[self._input].data)
        targets = [self._to_device(batch[key].data) for key in self._targets]
        self.optimizer.zero_grad()
        output = self.model(x)
        loss = self.loss(output, *targets)
        prediction = output[0] if isinstance(output, tuple) else output
        loss.backward()
        self.optimizer.step()
        if self._prediction in request:
            spec = self.spec[self._prediction].copy()
            spec.roi = request[self._prediction].roi
            batch.arrays[self._prediction] = gp.Array(prediction.detach().cpu().numpy(), spec)
        batch.loss = loss.detach()
        self.iteration += 1
        batch.iteration = self.iteration
