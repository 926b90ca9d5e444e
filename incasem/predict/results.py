"""The outcome of a prediction: per entry, blocks computed, skipped and failed, speed, scores.

`PredictionResult.summary` is what the terminal and the log show, `result_as_json` what
``--json`` prints and the Sacred run records; `PredictionFailed` carries the result of a run
with failed blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from incasem.errors import IncasemError
from incasem.metrics import format_scores


class PredictionFailed(IncasemError):
    """Some blocks could not be predicted; ``result`` holds the full outcome."""

    def __init__(self, message: str, result: PredictionResult):
        super().__init__(message)
        self.result = result


@dataclass
class EntryResult:
    """Outcome of one entry.

    Attributes:
        name: the entry's name.
        container: output container.
        group: the entry's output group.
        datasets: probability datasets (class 0 first), then the segmentation.
        roi_voxels: the predicted ROI, ``[z0:z1, y0:y1, x0:x1]`` voxels.
        blocks: blocks covering the ROI.
        computed: blocks computed in this run.
        skipped: blocks skipped because an earlier run of the same prediction did them.
        failed: blocks that failed (or could not run).
        failures: ``block <id> at <ROI>`` of each failed block.
        first_error: the first worker error, one line.
        seconds: wall time of the entry's task.
        voxels_per_second: voxels of the computed blocks per second.
        scores: flat scores (see `incasem.metrics.flat_scores`), if metrics were logged.
        best_thresholds: per foreground class, the sweep item with the best F1.
        log_dir: the workers' log folder.
    """

    name: str
    container: Path
    group: str
    datasets: list[str]
    roi_voxels: str
    blocks: int
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    first_error: str | None = None
    seconds: float = 0.0
    voxels_per_second: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    best_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    log_dir: Path | None = None

    @property
    def ok(self) -> bool:
        """All blocks are done (computed now or earlier)."""
        return self.failed == 0 and self.computed + self.skipped == self.blocks


@dataclass
class PredictionResult:
    """Outcome of a prediction run."""

    prediction_id: int | None
    group: str
    model: str
    checkpoint: Path
    entries: list[EntryResult]
    threshold: float = 0.5
    threshold_origin: str = ""
    post_processing: str = "none"

    @property
    def ok(self) -> bool:
        """Every block of every entry is done."""
        return all(entry.ok for entry in self.entries)

    def summary(self) -> str:
        """A few lines per entry for the terminal and the log."""
        lines = [
            f"prediction {self.group} with {self.checkpoint}",
            f"  foreground threshold {self.threshold:g} ({self.threshold_origin})",
            f"  post-processing: {self.post_processing}",
        ]
        for e in self.entries:
            status = "done" if e.ok else "FAILED"
            lines.append(
                f"  {e.name} {e.roi_voxels}: {status}; {e.blocks} blocks: {e.computed} computed, "
                f"{e.skipped} skipped, {e.failed} failed; {e.seconds:.1f} s, "
                f"{e.voxels_per_second:,.0f} voxels/s"
            )
            lines.append(f"    output: {e.container}/{e.group}")
            if e.scores:
                lines.append(f"    scores: {format_scores(e.scores)}")
            for class_name, best in e.best_thresholds.items():
                lines.append(
                    f"    {class_name}: best F1 {best['f1']:.4f} at threshold "
                    f"{best['threshold']:.3f}"
                )
            for failure in e.failures[:10]:
                lines.append(f"    failed: {failure}")
            if len(e.failures) > 10:
                lines.append(f"    ... and {len(e.failures) - 10} more failed blocks")
            if e.first_error:
                lines.append(f"    first error: {e.first_error}")
            if not e.ok and e.log_dir is not None:
                lines.append(f"    worker logs: {e.log_dir}")
        return "\n".join(lines)


def result_as_json(result: PredictionResult) -> str:
    """The result as JSON (for ``--json`` output and the Sacred run's result)."""
    return json.dumps(
        {
            "prediction_id": result.prediction_id,
            "group": result.group,
            "model": result.model,
            "checkpoint": str(result.checkpoint),
            "threshold": result.threshold,
            "threshold_origin": result.threshold_origin,
            "ok": result.ok,
            "entries": [
                {
                    "name": e.name,
                    "container": str(e.container),
                    "group": e.group,
                    "datasets": e.datasets,
                    "blocks": e.blocks,
                    "computed": e.computed,
                    "skipped": e.skipped,
                    "failed": e.failed,
                    "first_error": e.first_error,
                    "seconds": e.seconds,
                    "voxels_per_second": e.voxels_per_second,
                    "scores": e.scores,
                    "best_thresholds": e.best_thresholds,
                }
                for e in result.entries
            ],
        },
        indent=2,
    )
