"""incasem: organelle segmentation in FIB-SEM volumes with sparse annotations (ASEM)."""

__version__ = "0.1.0"

import warnings as _warnings

# sacred 0.8.7 imports pkg_resources, which setuptools < 81 marks deprecated on every start;
# the pin is deliberate (see setup.cfg), so the warning tells users nothing they can act on.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
