"""Blockwise prediction with daisy: out-of-memory volumes, many workers, seam-free, resumable.

`predict` runs a whole prediction (library form of ``scripts/predict.py``): `plan_prediction`
checks it and answers a frozen `PredictionPlan`, `execute_plan` runs that plan; `evaluate_entry`
scores a model on one data-config entry in process (what training calls to validate);
`predict_block` is the one function both use to predict a block. Names are resolved on first
use, so that daisy worker processes importing this package do not pay for what they do not use.
"""

from __future__ import annotations

from incasem.lazy import lazy_exports

_EXPORTS = {
    "BlockLayout": "incasem.predict.geometry",
    "EntryPlan": "incasem.predict.plan",
    "EntryResult": "incasem.predict.results",
    "PredictionFailed": "incasem.predict.results",
    "PredictionPlan": "incasem.predict.plan",
    "PredictionResult": "incasem.predict.results",
    "PredictionSettings": "incasem.predict.settings",
    "entry_scores": "incasem.predict.evaluate",
    "evaluate_entry": "incasem.predict.evaluate",
    "execute_plan": "incasem.predict.execute",
    "plan_prediction": "incasem.predict.plan",
    "predict": "incasem.predict.run",
    "predict_block": "incasem.predict.block",
    "read_mirrored": "incasem.predict.block",
    "resolve_checkpoint": "incasem.predict.checkpoints",
    "score_entry": "incasem.predict.evaluate",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
