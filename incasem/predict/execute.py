"""Execute a planned prediction: reserve its outputs, run one daisy task per entry, report.

Entries run one after another, each as one blockwise job with ``num_workers`` workers
(`incasem.predict.task`); the outcome (blocks computed, skipped, failed with their ROIs, voxels
per second, scores) is summarised per entry (`incasem.predict.results`) and recorded in the
entry group's attributes. A run with failed blocks raises `PredictionFailed` after the summary;
rerunning it with ``resume`` computes just those blocks. Execution reads the frozen plan and
changes nothing in it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from funlib.geometry import Roi

from incasem.blockwise import BlockFailures, JobOutcome, run_job
from incasem.errors import IncasemError, Interrupted
from incasem.io import format_roi_voxels, open_array
from incasem.io.data_config import DataEntry
from incasem.postprocess.cleanup import MAX_VOXELS, PostProcessing
from incasem.predict.block_metrics import load_metrics, metrics_path
from incasem.predict.evaluate import entry_scores
from incasem.predict.geometry import BlockLayout
from incasem.predict.output import EntryOutputs, safe_name, timestamp
from incasem.predict.plan import EntryPlan, PredictionPlan
from incasem.predict.progress import PredictionProgress
from incasem.predict.resample import (
    UpsampleBlock,
    delete_input,
    downsample_input,
    model_outputs,
    upsample_outputs,
)
from incasem.predict.reserve import reserve_outputs
from incasem.predict.results import EntryResult, PredictionFailed, PredictionResult
from incasem.predict.resume import tracking_path
from incasem.predict.settings import PredictionSettings
from incasem.predict.task import prediction_block_timeout, prediction_job, prediction_worker
from incasem.predict.truth import EntryTruth
from incasem.predict.worker import WorkerSpec

logger = logging.getLogger("incasem.predict")


def execute_plan(
    plan: PredictionPlan, settings: PredictionSettings | None = None
) -> PredictionResult:
    """Run a prediction planned by `plan_prediction` (see `predict` for the outcome): reserve
    its outputs (`reserve_outputs`), then predict its entries one after another.

    ``settings``: the planned settings again, as the Sacred run has them (with its run id); a
    request that differs from the plan's in anything that shapes the output is refused.
    """
    if settings is not None:
        if settings != plan.settings:
            raise IncasemError("the prediction's settings changed after it was planned")
        plan = replace(plan, settings=settings)
    logger.info("foreground threshold %g (%s)", plan.threshold, plan.threshold_origin)
    logger.info(
        "post-processing: %s (%s)", plan.post_processing.describe(), plan.post_processing_origin
    )
    plan = reserve_outputs(plan)
    assert plan.group is not None
    logger.info(
        "prediction %s with %s%s",
        plan.group,
        plan.resolved.path,
        f" (continue an interrupted run with --resume {plan.prediction_id})"
        if plan.prediction_id is not None and plan.settings.resume is None
        else "",
    )
    try:
        results = [_run_entry(plan, p) for p in plan.entries]
    except KeyboardInterrupt:
        raise Interrupted(
            f"the blocks done are kept in {plan.group}: run again with --resume "
            f"{plan.prediction_id} to compute the rest"
        ) from None
    result = PredictionResult(
        prediction_id=plan.prediction_id,
        group=plan.group,
        model=plan.model,
        checkpoint=plan.resolved.path,
        entries=results,
        threshold=plan.threshold,
        threshold_origin=plan.threshold_origin,
        post_processing=f"{plan.post_processing.describe()} ({plan.post_processing_origin})",
    )
    logger.info("%s", result.summary())
    if not result.ok:
        raise _failure(plan, result)
    return result


def _failure(plan: PredictionPlan, result: PredictionResult) -> PredictionFailed:
    """The one-line error of a prediction with failed blocks, naming the first failure and
    how to compute just those blocks."""
    failed = sum(e.failed for e in result.entries)
    first = next(
        (
            e.first_error or (e.failures[0] if e.failures else None)
            for e in result.entries
            if not e.ok
        ),
        None,
    )
    hint = f"--resume {plan.prediction_id}" if plan.prediction_id is not None else "--resume"
    return PredictionFailed(
        f"{failed} of {sum(e.blocks for e in result.entries)} blocks failed"
        + (f" (first: {first})" if first else "")
        + f"; rerun with {hint} to compute only those",
        result,
    )


def _worker_spec(
    plan: PredictionPlan, p: EntryPlan, metrics_dir: Path | None, failures: BlockFailures
) -> WorkerSpec:
    """What every worker of the entry needs (saved as JSON beside the outputs)."""
    settings, outputs = plan.settings, p.outputs
    assert outputs is not None
    return WorkerSpec(
        checkpoint=str(plan.resolved.path.absolute()),
        checkpoint_sha256=plan.checkpoint_sha256,
        device=plan.device,
        gpus=list(plan.gpus) if plan.gpus is not None else None,
        threads=plan.threads,
        deterministic=settings.deterministic,
        entry=p.entry.model_dump(),
        data_root=str(p.data_root) if p.data_root else None,
        layout=p.layout.describe(),
        normalisation=dict(plan.card.normalisation),
        output_container=str(outputs.container),
        probabilities=list(outputs.probabilities),
        segmentation=outputs.segmentation,
        probability_dtype=settings.probability_dtype,
        threshold=plan.threshold,
        metrics_dir=str(metrics_dir) if metrics_dir is not None else None,
        precision=settings.precision,
        failures_dir=str(failures.folder),
        flips=settings.flips,
    )


def _count_blocks(
    result: EntryResult,
    outcome: JobOutcome,
    layout: BlockLayout,
    roi: Roi,
    failures: BlockFailures,
) -> None:
    """Computed, skipped and failed blocks of the job, each failed block's ROI (clipped to
    the entry's ``roi``, nm) and the first failure its workers recorded."""
    result.first_error = outcome.error
    state = outcome.state
    if state is not None:
        result.skipped = int(state.skipped_count)
        result.computed = int(state.completed_count) - result.skipped
        result.failed = result.blocks - int(state.completed_count)
        if result.failed:
            # A worker that failed once and was replaced leaves its error in the state even
            # when every block was then done: only a failed run has a first error to show.
            result.first_error = result.first_error or failures.first()
    else:
        result.failed = result.blocks
    voxel_size = layout.voxel_size
    for block_id, write_roi in outcome.failed_blocks:
        clipped = write_roi.intersect(roi)
        where = format_roi_voxels(clipped.begin / voxel_size, clipped.shape / voxel_size)
        result.failures.append(f"block {block_id} at {where}")


def _score(result: EntryResult, plan: PredictionPlan, metrics_dir: Path, blocks: int) -> None:
    """The entry's scores from the blocks' stored counts, once all ``blocks`` have them."""
    counts, histograms, scored = load_metrics(metrics_dir, plan.num_classes)
    if scored != blocks:
        return
    result.scores = entry_scores(counts, histograms, plan.threshold, plan.class_names)
    for class_id in range(1, plan.num_classes):
        result.best_thresholds[plan.class_names[class_id]] = histograms.best_threshold(class_id)


def _run_entry(plan: PredictionPlan, p: EntryPlan) -> EntryResult:
    if p.resampling is not None:
        return _run_resampled_entry(plan, p)
    settings, layout, outputs = plan.settings, p.layout, p.outputs
    assert outputs is not None
    entry = p.entry
    roi = entry.roi
    work_dir = outputs.work_dir
    metrics_dir = metrics_path(work_dir, p.digest)
    log_metrics = settings.log_metrics and bool(entry.labels)
    spec_path = work_dir / f"worker-{p.digest[:16]}.json"
    log_dir = work_dir / "logs" / safe_name(entry.name)
    failures = BlockFailures(log_dir / "failures")
    failures.clear()  # a resumed prediction reports its own failures, not earlier ones
    _worker_spec(plan, p, metrics_dir if log_metrics else None, failures).save(spec_path)
    blocks = layout.num_blocks(roi)
    result = EntryResult(
        name=entry.name,
        container=outputs.container,
        group=outputs.group,
        datasets=outputs.datasets(),
        roi_voxels=entry.roi_voxels,
        blocks=blocks,
        log_dir=log_dir,
    )
    timeout = settings.block_timeout or prediction_block_timeout(layout, plan.num_fmaps)
    job = prediction_job(
        safe_name(entry.name),
        roi,
        layout,
        settings.num_workers,
        timeout,
        settings.max_retries,
        tracking_path(work_dir, p.digest),
    )
    roi_voxels = int(np.prod(roi.shape / layout.voxel_size))
    logger.info(
        "%s: %s voxels in %d blocks of %s (input %s, %d workers, %s, block timeout %.0f s)",
        entry.name,
        entry.roi_voxels,
        blocks,
        list(layout.write_shape),
        list(layout.input_shape),
        settings.num_workers,
        plan.device + (f" {list(plan.gpus)}" if plan.gpus else ""),
        timeout,
    )
    started = time.monotonic()
    progress = PredictionProgress(entry.name, roi_voxels / blocks, enabled=settings.progress)
    worker = prediction_worker(spec_path, settings.worker_command)
    outcome = run_job(
        job, worker, work_dir / "logs", progress=progress, host=settings.scheduler_host
    )
    result.seconds = time.monotonic() - started
    _count_blocks(result, outcome, layout, roi, failures)
    result.voxels_per_second = result.computed * roi_voxels / blocks / max(result.seconds, 1e-9)
    if log_metrics:
        _score(result, plan, metrics_dir, result.blocks)
    elif settings.log_metrics:
        logger.info("%s: no labels, so no metrics", entry.name)
    if result.ok:
        post_process(outputs, plan.post_processing, entry, p.data_root)
    _record_outcome(outputs, result)
    return result


def post_process(
    outputs: EntryOutputs,
    post_processing: PostProcessing,
    entry: DataEntry,
    data_root: str | os.PathLike | None,
) -> None:
    """Apply ``post_processing`` to the entry's whole class-1 segmentation, in place.

    Objects and holes span blocks, so this runs once on the whole volume after the blockwise
    pass (never per block); a segmentation over `MAX_VOXELS` is skipped with a warning. Filled
    holes stay inside the entry's mask. Records what was done in the segmentation's
    ``post_processing`` attribute.
    """
    if not post_processing.active:
        return
    name = entry.name
    segmentation = open_array(outputs.container, outputs.segmentation, "r+")
    voxels = int(np.prod(segmentation.roi.shape / segmentation.voxel_size))
    if voxels > MAX_VOXELS:
        logger.warning(
            "%s: post-processing (%s) skipped: %s voxels do not fit the whole-volume step "
            "(at most %s); the segmentation is as predicted",
            name, post_processing.describe(), f"{voxels:,}", f"{MAX_VOXELS:,}",
        )  # fmt: skip
        return
    foreground = segmentation[segmentation.roi] == 1
    cleaned = post_processing.apply(foreground, segmentation.voxel_size)
    cleaned &= EntryTruth(entry, data_root).read_mask(segmentation.roi)
    segmentation[segmentation.roi] = cleaned.astype(np.uint8)
    segmentation.attrs["post_processing"] = post_processing.describe()


def _record_outcome(outputs: EntryOutputs, result: EntryResult) -> None:
    """Status, block counts and scores in the entry group's attributes."""
    outputs.update_attrs(
        {
            "status": "complete" if result.ok else "incomplete",
            "finished": timestamp(),
            "blocks": {
                "total": result.blocks,
                "computed_last_run": result.computed,
                "skipped_last_run": result.skipped,
                "failed": result.failed,
            },
            "metrics": result.scores,
            "best_thresholds": result.best_thresholds,
        }
    )


def _run_resampled_entry(plan: PredictionPlan, p: EntryPlan) -> EntryResult:
    """An entry at a whole fraction of the model's voxel size (`incasem.predict.resample`):
    average the raw, predict at the model's voxel size, then (by default) upsample into the
    entry's outputs and score them there. Block counts are those of the prediction."""
    settings, resampling, outputs = plan.settings, p.resampling, p.outputs
    assert resampling is not None and outputs is not None
    started = time.monotonic()
    at_model = model_outputs(outputs, resampling, plan.num_classes)
    entry = downsample_input(
        p.entry, p.data_root, resampling, p.layout.context, outputs,
        settings.num_workers, settings.worker_command, settings.progress,
    )  # fmt: skip
    if settings.log_metrics and not resampling.upsamples:
        logger.info("%s: metrics need the labels' voxel size: no metrics", p.entry.name)
    result = _run_entry(
        replace(
            plan, settings=settings.replace(log_metrics=False), post_processing=PostProcessing()
        ),
        replace(p, entry=entry, outputs=at_model, resampling=None),
    )
    if resampling.upsamples:
        if result.ok:
            _upsample(plan, p, at_model, result)
        _record_outcome(outputs, result)
        result.group, result.datasets = outputs.group, outputs.datasets()
        result.roi_voxels = p.entry.roi_voxels
    if result.ok:
        if resampling.upsamples:
            post_process(outputs, plan.post_processing, p.entry, p.data_root)
        else:
            post_process(at_model, plan.post_processing, entry, p.data_root)
        delete_input(outputs)
    result.seconds = time.monotonic() - started
    voxels = int(np.prod(p.entry.shape))
    result.voxels_per_second = voxels * result.computed / result.blocks / result.seconds
    return result


def _upsample(
    plan: PredictionPlan, p: EntryPlan, at_model: EntryOutputs, result: EntryResult
) -> None:
    """Pass 3 of a resampled entry: its outputs at the data's voxel size, scored there."""
    settings, outputs, resampling = plan.settings, p.outputs, p.resampling
    assert outputs is not None and resampling is not None
    metrics_dir = None
    if settings.log_metrics and p.entry.labels:
        metrics_dir = metrics_path(outputs.work_dir, p.digest)
    block = UpsampleBlock(
        entry=p.entry.model_dump(),
        data_root=str(p.data_root) if p.data_root else None,
        container=str(outputs.container),
        coarse=at_model.probabilities,
        probabilities=outputs.probabilities,
        segmentation=outputs.segmentation,
        probability_dtype=settings.probability_dtype,
        threshold=plan.threshold,
        metrics_dir=str(metrics_dir) if metrics_dir is not None else None,
    )
    chunks = resampling.output_layout(p.layout).write_shape
    blocks = upsample_outputs(
        block, chunks, settings.num_workers, settings.worker_command, settings.progress
    )
    if metrics_dir is not None:
        _score(result, plan, metrics_dir, blocks)
