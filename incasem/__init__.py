"""incasem: organelle segmentation in FIB-SEM volumes with sparse annotations (ASEM).

The public API (`__all__`), the same in every release of this major version:

* `train` and `predict`: the two commands from Python, as Sacred runs; they return where the
  results are (`TrainingRun`, `PredictionRun`). ``incasem.predict`` is also the package of the
  prediction internals; calling it runs `incasem.api.predict`.
* `load_model`: a checkpoint as a `Model` that predicts numpy arrays (z, y, x) in memory.
* `TrainingConfig`: the training configuration; `DataConfig`, `DataEntry`,
  `load_data_config`, `check_data_config`: data configs (ROIs in voxels, voxel sizes in nm);
  `Roi`, `Coordinate`, `roi_from_voxels`, `roi_to_voxels`: ROIs in nm and their voxel form.
* `IncasemError`: every bad input raises it, with one line naming the file, key or ROI.

Names are resolved on first use: ``import incasem`` does not import torch or gunpowder.
Everything else lives in the sub-packages (``incasem.pipeline``, ``incasem.gunpowder``, ...).
Units everywhere: world positions and voxel sizes in nm, sizes in voxels, axes z, y, x.
"""

__version__ = "0.1.0"

import importlib as _importlib
import sys as _sys
import types as _types
import warnings as _warnings
from typing import Any as _Any

from incasem.lazy import lazy_exports as _lazy_exports

# sacred 0.8.7 imports pkg_resources, which setuptools < 81 marks deprecated on every start;
# the pin is deliberate (see setup.cfg), so the warning tells users nothing they can act on.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

_EXPORTS = {
    "Coordinate": "funlib.geometry",
    "DataConfig": "incasem.io.data_config",
    "DataEntry": "incasem.io.data_config",
    "IncasemError": "incasem.errors",
    "Model": "incasem.predict.memory",
    "PredictionRun": "incasem.api",
    "Roi": "funlib.geometry",
    "TrainingConfig": "incasem.training.config",
    "TrainingRun": "incasem.training.cli",
    "check_data_config": "incasem.io.data_config",
    "load_data_config": "incasem.io.data_config",
    "load_model": "incasem.predict.memory",
    "roi_from_voxels": "incasem.io.roi",
    "roi_to_voxels": "incasem.io.roi",
    "train": "incasem.api",
}

__all__ = sorted([*_EXPORTS, "predict"])


__getattr__ = _lazy_exports(__name__, _EXPORTS)


class _CallablePredictPackage(_types.ModuleType):
    """The package ``incasem.predict``, callable: ``incasem.predict(...)`` runs
    `incasem.api.predict` (the package's attributes stay as they are)."""

    def __call__(self, *args: _Any, **kwargs: _Any) -> _Any:
        return _importlib.import_module("incasem.api").predict(*args, **kwargs)


# `incasem.predict` is a sub-package, so a function of that name here would be replaced by the
# module the first time anything imports from it; the module itself answers the call instead.
_importlib.import_module("incasem.predict")
_sys.modules["incasem.predict"].__class__ = _CallablePredictPackage
