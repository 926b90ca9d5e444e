"""Package faces whose names are imported on first use.

incasem's packages keep a small public face (``__all__``) over private modules, and importing
a package must not import torch, gunpowder or daisy before a name that needs them is used:
``import incasem`` stays light, and daisy worker processes pay only for what they use. Each
face declares its names once (name -> module) and takes its ``__getattr__`` from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module-level ``__getattr__`` (PEP 562) of ``package``.

    Args:
        package: the package's ``__name__`` (for the error message).
        exports: public name -> the module (dotted path) that defines it.

    Returns:
        A function that imports ``exports[name]`` on first use and returns its attribute
        ``name``; any other name raises ``AttributeError`` as Python's own lookup would.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
