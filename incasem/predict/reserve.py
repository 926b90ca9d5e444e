"""Reserve a planned prediction's outputs: claim its group, record it, create its datasets.

The one step between planning (`incasem.predict.plan`, which writes nothing) and execution
(`incasem.predict.execute`, which only fills datasets that exist): a new prediction claims its
id and group (`reserve_prediction`, an atomic ``mkdir``), an ``output_group`` given with
``overwrite`` is emptied, the group records the request (checkpoint, card, layout, settings),
and every entry's datasets are created empty (or, when resuming, kept and marked running).
`reserve_outputs` answers the plan with its group, id and entry outputs filled in.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from incasem import __version__
from incasem.io import carried_voxel_size_attrs
from incasem.io.arrays import write_refusal
from incasem.predict.output import (
    EntryOutputs,
    delete_group,
    reserve_prediction,
    set_group_attrs,
    timestamp,
)
from incasem.predict.plan import EntryPlan, PredictionPlan, output_geometry
from incasem.predict.resample import model_outputs

logger = logging.getLogger("incasem.predict")


def reserve_outputs(plan: PredictionPlan) -> PredictionPlan:
    """Create (or reuse, when resuming) the prediction group and every entry's datasets.

    Returns the plan with its group, prediction id and entry outputs decided. Raises
    `IncasemError` naming the containers when they cannot be written (a full disk, a
    read-only group).
    """
    try:
        return _reserve(plan)
    except (OSError, KeyError) as e:
        containers = ", ".join(sorted({str(p.container) for p in plan.entries}))
        refusal = write_refusal(containers, e)
        if refusal is None:
            raise
        raise refusal from None


def _reserve(plan: PredictionPlan) -> PredictionPlan:
    containers = sorted({p.container for p in plan.entries})
    if plan.group is None:
        plan = _claim_group(plan, containers)
    elif plan.replace_group:
        for container in containers:
            delete_group(container, plan.group)
    assert plan.group is not None
    record = _prediction_record(plan)
    key = "incasem_prediction_resumed" if plan.settings.resume is not None else "incasem_prediction"
    for container in containers:
        set_group_attrs(container, plan.group, {key: record})
    for p in plan.entries:
        _create_entry_outputs(plan, p)
    return plan


def _claim_group(plan: PredictionPlan, containers: list[Path]) -> PredictionPlan:
    """The plan with a new prediction id and group, claimed in every container, preferably
    the id of the prediction's Sacred run."""
    run_id = plan.settings.sacred_run_id
    preferred = int(run_id) if str(run_id).isdigit() else None
    prediction_id, group = reserve_prediction(containers, plan.model, preferred)
    if preferred is not None and prediction_id != preferred:
        logger.warning(
            "prediction run p%s writes to %s: that container already holds a predict_%04d "
            "of %s (from another runs folder)",
            run_id,
            group,
            preferred,
            plan.model,
        )
    entries = tuple(
        replace(
            p, outputs=EntryOutputs.for_entry(p.container, group, p.entry.name, plan.num_classes)
        )
        for p in plan.entries
    )
    return replace(plan, prediction_id=prediction_id, group=group, entries=entries)


def _prediction_record(plan: PredictionPlan) -> dict[str, Any]:
    """What the prediction group records about the request."""
    card = plan.card
    return {
        "id": plan.prediction_id,
        "incasem_version": __version__,
        "created": timestamp(),
        "host": socket.gethostname(),
        "checkpoint": str(plan.resolved.path.absolute()),
        "checkpoint_sha256": plan.checkpoint_sha256,
        "training_run": plan.resolved.run_id,
        "iteration": plan.resolved.iteration,
        "card": {
            "class_names": list(plan.class_names),
            "voxel_size": list(card.voxel_size),
            "input_size_voxels": list(card.input_size_voxels),
            "output_size_voxels": list(card.output_size_voxels),
            "iteration": card.iteration,
            "data_digest": card.data_digest,
            "hparams": card.hparams,
            "normalisation": card.normalisation,
        },
        "layout": plan.layout.describe(),  # with auto sizes: the largest entry's
        "entry_layouts": {p.entry.name: p.layout.describe() for p in plan.entries},
        "settings": plan.settings.as_dict(),
        "sacred_run_id": plan.settings.sacred_run_id,
        "entries": [p.entry.name for p in plan.entries],
    }


def _create_entry_outputs(plan: PredictionPlan, p: EntryPlan) -> None:
    """Create an entry's empty datasets (and, for an upsampled entry, those at the model's
    voxel size), recreate them, or mark resumed ones running."""
    assert p.outputs is not None
    if p.action == "resume":
        p.outputs.update_attrs({"status": "running", "resumed": timestamp()})
        return
    if p.action == "recreate":
        p.outputs.delete()
    attrs = {
        "threshold": plan.threshold if plan.num_classes == 2 else None,
        "entry": p.entry.model_dump(),
        "provenance": p.provenance,
        "provenance_hash": p.digest,
        "status": "running",
        "created": timestamp(),
    }
    if p.resampling is not None:
        attrs["voxel_sizes"] = p.resampling.describe()
    roi, layout = output_geometry(p.entry, p.layout, p.resampling)
    carried = carried_voxel_size_attrs(p.entry.path(p.data_root), p.entry.raw)
    probabilities = plan.settings.probability_dtype
    p.outputs.create(roi, layout, probabilities, plan.class_names, attrs, carried)
    if p.resampling is not None and p.resampling.upsamples:
        model_outputs(p.outputs, p.resampling, plan.num_classes).create(
            p.resampling.roi, p.layout, probabilities, plan.class_names, attrs
        )
