"""incasem: organelle segmentation in FIB-SEM volumes with sparse annotations (ASEM)."""

__version__ = "0.1.0"
