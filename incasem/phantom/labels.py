"""The organelle labels of the synthetic cell, in the order of ``PhantomCell.labels``, and
the class codes of the placed organelles.
"""

from __future__ import annotations

# Label names, in the order of ``PhantomCell.labels``.
ORGANELLES: tuple[str, ...] = (
    "mito",
    "er",
    "golgi",
    "vesicles",
    "nucleus",
    "nuclear_pores",
    "plasma_membrane",
)

_MITO, _ER, _GOLGI, _VESICLE = (ORGANELLES.index(n) for n in ("mito", "er", "golgi", "vesicles"))
