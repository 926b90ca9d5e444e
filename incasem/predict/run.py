"""Run a prediction: plan it, then execute it; the names a caller of prediction needs.

A prediction is planned completely before anything is written (`incasem.predict.plan`: the
checkpoint compared with the data, every ROI, the block layout and every output location
checked), so a bad request fails with one line and writes nothing. Executing the frozen plan
(`incasem.predict.execute`) reserves its outputs (`incasem.predict.reserve`) and runs one
blockwise job per entry; the outcome is a `PredictionResult` (`incasem.predict.results`).

The modules of the prediction package, one idea each:

- `incasem.predict.plan`: check a request, decide every output (`PredictionPlan`, frozen);
- `incasem.predict.entries`: the entries, read and checked against their data and the model;
- `incasem.predict.block_size`: the network input per block (default, given or ``auto``);
- `incasem.predict.device`: CPU or CUDA, and which GPUs;
- `incasem.predict.reserve`: claim the group, record the request, create the datasets;
- `incasem.predict.execute`: run the entries' jobs, count and score their blocks;
- `incasem.predict.results`: the outcome, its summary and JSON.
"""

from __future__ import annotations

from typing import Any

from incasem.predict.execute import execute_plan
from incasem.predict.plan import EntryPlan, PredictionPlan, plan_prediction
from incasem.predict.results import (
    EntryResult,
    PredictionFailed,
    PredictionResult,
    result_as_json,
)
from incasem.predict.settings import PredictionSettings

__all__ = [
    "EntryPlan",
    "EntryResult",
    "PredictionFailed",
    "PredictionPlan",
    "PredictionResult",
    "execute_plan",
    "plan_prediction",
    "predict",
    "result_as_json",
]


def predict(settings: PredictionSettings | None = None, **overrides: Any) -> PredictionResult:
    """Predict every entry of a data config (or one input container) blockwise with daisy.

    Args:
        settings: a `PredictionSettings`; or leave it out and give its fields as keywords,
            e.g. ``predict(checkpoint="model.pt", input="cell.zarr", num_workers=2)``.
        overrides: fields to change in ``settings``.

    Returns:
        The outcome per entry (output paths, block counts, voxels/s, scores).

    Raises:
        IncasemError: the request is invalid (nothing was written).
        PredictionFailed: some blocks failed (after all others were done); its ``result`` is
            the `PredictionResult`. Rerun with ``resume=<id>`` to compute just those.
    """
    if settings is None:
        settings = PredictionSettings(**overrides)
    elif overrides:
        settings = settings.replace(**overrides)
    return execute_plan(plan_prediction(settings))
