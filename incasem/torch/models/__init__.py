"""The incasem segmentation network and the arithmetic of its valid input and output sizes.

Training requests and prediction blocks must be planned in the sizes the network accepts, so the
shape calculator sits next to the model and the model checks every input with it. The calculator
is plain Python; the network classes are imported on first use, so that planning code (configs,
block sizes) does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from incasem.lazy import lazy_exports
from incasem.torch.models.shapes import (
    DEFAULT_DOWNSAMPLE_FACTORS,
    context,
    input_shape_for_output,
    normalise_downsample_factors,
    output_shape,
    valid_input_sizes,
)

if TYPE_CHECKING:
    from incasem.torch.models.unet import (
        ASEMUNet,
        ConvPass,
        UNet,
        Upsample,
        initialise_weights,
        load_model_state,
        place_model,
    )

_NETWORK_NAMES = (
    "ASEMUNet",
    "ConvPass",
    "UNet",
    "Upsample",
    "initialise_weights",
    "load_model_state",
    "place_model",
)

__all__ = [
    "ASEMUNet",
    "ConvPass",
    "DEFAULT_DOWNSAMPLE_FACTORS",
    "UNet",
    "Upsample",
    "context",
    "initialise_weights",
    "input_shape_for_output",
    "load_model_state",
    "normalise_downsample_factors",
    "output_shape",
    "place_model",
    "valid_input_sizes",
]


__getattr__ = lazy_exports(__name__, dict.fromkeys(_NETWORK_NAMES, "incasem.torch.models.unet"))
