"""A user's own gunpowder nodes in the training pipeline, named by import path.

The training config lists them under ``training.pipeline.extra_nodes``, each as
``{class: "my_lab.nodes:SectionBrightness", place: "after_sources", args: {...}}``: the class is
imported (it must subclass ``gunpowder.BatchFilter``), the arguments are bound to its signature,
and the node goes into `incasem.pipeline.training.batch_pipeline` at its place. Everything but
the construction is checked before a run is recorded (`check_extra_nodes`), so a typo costs one
line, not a failed run. The places (`PLACES`) and what the batch holds there:

* ``after_sources``: the sources joined, before any augmentation. ``RAW`` is float32 in [0, 1]
  (uint8 / 255), ``LABELS`` uint8 class ids, ``VALID`` uint8 (1 where labels are known).
* ``after_augmentation``: after every augmentation (elastic, mirror/transpose, intensity,
  gamma, noise, defects), raw still in [0, 1].
* ``before_balancing``: raw mapped to [-1, 1] (float16 for 8-bit data), just before the loss
  weights (``SCALES``) are computed from ``LABELS`` and ``VALID``.

Arrays are (z, y, x); nodes reach them as ``gunpowder.ArrayKey("RAW")``, ``"LABELS"`` and
``"VALID"`` (the keys of `incasem.pipeline.TrainingKeys`). Their ROIs (nm) are those of the
batch request, raw's starting at 0: the random location is undone before these places, so
``raw.data[i]`` is the batch's i-th z-section, wherever in the volume it came from. Nodes run
in the batch-preparing worker processes (``training.precache.num_workers``).

This module imports gunpowder only when a node is resolved, so the config schema can name
`PLACES` without loading it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from incasem.errors import IncasemError

if TYPE_CHECKING:
    import gunpowder as gp

#: The named points of the training pipeline where extra nodes go, in pipeline order.
PLACES = ("after_sources", "after_augmentation", "before_balancing")

#: Nodes by place, each list in pipeline order.
ExtraNodes = Mapping[str, Sequence["gp.BatchFilter"]]


class ExtraNode(BaseModel):
    """A user's gunpowder node: ``class`` (``module:Class``), ``place`` (one of `PLACES`) and
    ``args`` (JSON values passed as keyword arguments)."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    node_class: str = Field(alias="class")
    place: str
    args: dict[str, Any] = {}

    @field_validator("node_class")
    @classmethod
    def _import_path(cls, value: str) -> str:
        module, colon, name = value.partition(":")
        if not (colon and module.strip() and name.strip()):
            raise ValueError("expected an import path 'module:Class', e.g. 'my_lab.nodes:Shift'")
        return value

    @field_validator("place")
    @classmethod
    def _known_place(cls, value: str) -> str:
        if value not in PLACES:
            raise ValueError(f"expected one of {', '.join(PLACES)}")
        return value


def _node_key(index: int) -> str:
    return f"training.pipeline.extra_nodes[{index}]"


def resolve_node_class(class_path: str, key: str) -> type:
    """The class ``module:Class`` names, checked to be a gunpowder ``BatchFilter``.

    Args:
        class_path: ``"package.module:ClassName"``; the module must be importable (installed,
            or its folder on ``PYTHONPATH``).
        key: the config key to name in errors, e.g. ``training.pipeline.extra_nodes[0]``.

    Raises:
        IncasemError: one line naming ``<key>.class``: no such module, no such class, or not a
            ``gunpowder.BatchFilter`` subclass.
    """
    import gunpowder as gp

    module_name, _, class_name = class_path.partition(":")
    where = f"{key}.class {class_path!r}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise IncasemError(
            f"{where}: no module named {e.name!r} (install it or put its folder on PYTHONPATH)"
        ) from None
    except Exception as e:  # the user's module failed while importing
        raise IncasemError(
            f"{where}: importing {module_name} failed: {type(e).__name__}: {e}"
        ) from None
    node_class = getattr(module, class_name, None)
    if node_class is None:
        raise IncasemError(f"{where}: module {module_name} has no {class_name!r}")
    if not (isinstance(node_class, type) and issubclass(node_class, gp.BatchFilter)):
        raise IncasemError(f"{where}: not a gunpowder.BatchFilter subclass")
    return node_class


def _bind_arguments(node_class: type, args: Mapping[str, Any], key: str) -> None:
    """Raise `IncasemError` naming ``<key>.args`` when ``args`` do not fit the constructor."""
    try:
        inspect.signature(node_class).bind(**args)
    except TypeError as e:
        raise IncasemError(
            f"{key}.args: {e} ({node_class.__name__}{inspect.signature(node_class)})"
        ) from None


def check_extra_nodes(specs: Sequence[ExtraNode]) -> None:
    """Check every ``training.pipeline.extra_nodes`` item without building a node: the module
    imports, the class is a ``gunpowder.BatchFilter``, the arguments bind to its signature
    (places are checked by `ExtraNode`). Raises `IncasemError` naming the key."""
    for index, spec in enumerate(specs):
        node_class = resolve_node_class(spec.node_class, _node_key(index))
        _bind_arguments(node_class, spec.args, _node_key(index))


def configured_nodes(specs: Sequence[ExtraNode]) -> dict[str, list[gp.BatchFilter]]:
    """The nodes ``specs`` (``training.pipeline.extra_nodes``) describe, built, by place.

    Raises `IncasemError` naming the key when a class or its arguments are wrong, or when the
    constructor itself refuses its arguments.
    """
    nodes: dict[str, list[gp.BatchFilter]] = {}
    for index, spec in enumerate(specs):
        key = _node_key(index)
        node_class = resolve_node_class(spec.node_class, key)
        _bind_arguments(node_class, spec.args, key)
        try:
            node = node_class(**spec.args)
        except Exception as e:  # the user's constructor refused its arguments
            raise IncasemError(
                f"{key}.args: {spec.node_class} refused them: {type(e).__name__}: {e}"
            ) from None
        nodes.setdefault(spec.place, []).append(node)
    return nodes


def merge_nodes(*groups: ExtraNodes | None) -> dict[str, list[gp.BatchFilter]]:
    """Nodes by place from several sources, in order (config nodes first, then Python's).

    Raises `IncasemError` for a place the pipeline does not have.
    """
    merged: dict[str, list[gp.BatchFilter]] = {place: [] for place in PLACES}
    for group in groups:
        for place, nodes in (group or {}).items():
            if place not in merged:
                raise IncasemError(
                    f"extra nodes: unknown place {place!r}; expected one of {', '.join(PLACES)}"
                )
            merged[place] += list(nodes)
    return merged


def describe_nodes(specs: Sequence[ExtraNode]) -> list[dict[str, Any]]:
    """``specs`` (``training.pipeline.extra_nodes``) as plain data (class, place, args), for
    the model card."""
    return [spec.model_dump() for spec in specs]
