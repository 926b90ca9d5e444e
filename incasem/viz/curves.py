"""PNG plots of training curves and of a prediction's quality, for people rather than parsers.

TensorBoard needs a server and a browser; a PNG in the run folder opens anywhere and goes
straight into a report. Training writes its curves at every validation (so a run in progress
can be checked by opening one file), ``incasem runs plot`` draws the same figure from a run's
Sacred ``metrics.json``, and prediction with metrics draws a few slices next to the
threshold-sweep curve. Matplotlib's Agg backend keeps this working on headless machines; files
are written to a temporary name and renamed, so a viewer never sees half a PNG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from incasem.atomic import write_atomic  # noqa: E402

#: Validation scores drawn in the right panel, in this order.
SCORES = ("f1", "iou", "precision", "recall")

#: A curve: (iterations, values).
Series = tuple[Sequence[int], Sequence[float]]


def save_figure(figure: plt.Figure, out: str | os.PathLike) -> Path:
    """Write ``figure`` as PNG to ``out`` atomically (temporary file + rename) and close it."""
    try:
        return write_atomic(out, lambda tmp: figure.savefig(tmp, dpi=100))
    finally:
        plt.close(figure)


def plot_training_curves(
    curves: Mapping[str, Series], out: str | os.PathLike, title: str = ""
) -> Path:
    """Write `training_curves_figure` as a PNG to ``out`` (replaced if it exists: it is derived
    data) and return the path."""
    return save_figure(training_curves_figure(curves, title), out)


def training_curves_figure(curves: Mapping[str, Series], title: str = "") -> plt.Figure:
    """Training loss (left) and validation scores (right) over iterations.

    Args:
        curves: metric name -> (iterations, values); ``loss``, ``validation/<score>`` (f1,
            iou, precision, recall) and, with several foreground classes,
            ``validation/<class>/f1`` are drawn, other names are ignored.
        title: figure title, e.g. the run id and name.

    With several foreground classes the scores are their mean (`incasem.metrics.foreground_mean`)
    and every class's F1 is drawn as a dashed line of its own. Panels without data say so
    instead of staying blank.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    loss = curves.get("loss")
    if loss is not None and len(loss[0]):
        left.plot(loss[0], loss[1], color="#4363d8", linewidth=1, label="loss")
        if len(loss[1]) >= 20:
            window = max(len(loss[1]) // 20, 2)
            smooth = np.convolve(loss[1], np.ones(window) / window, mode="valid")
            left.plot(loss[0][window - 1 :], smooth, color="#e6194b", label=f"mean of {window}")
        left.legend(loc="upper right")
    else:
        left.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=left.transAxes)
    left.set_xlabel("iteration")
    left.set_ylabel("training loss")
    left.set_title("training loss")
    left.grid(alpha=0.3)
    drawn = False
    per_class = class_series(curves, "validation/", "f1")
    several = len(per_class) > 1
    for score in SCORES:
        series = curves.get(f"validation/{score}")
        if series is not None and len(series[0]):
            label = f"{score} (mean)" if several else score
            right.plot(series[0], series[1], marker="o", markersize=3, label=label)
            drawn = True
    if several:
        for name, series in per_class.items():
            right.plot(series[0], series[1], linestyle="--", marker=".", label=f"{name} f1")
    if drawn:
        right.legend(loc="best")
        right.set_ylim(-0.02, 1.02)
    else:
        right.text(
            0.5, 0.5, "no validation logged", ha="center", va="center", transform=right.transAxes
        )
    right.set_xlabel("iteration")
    right.set_ylabel("validation score")
    right.set_title(
        f"validation (mean over {len(per_class)} foreground classes)" if several else "validation"
    )
    right.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure


def class_series(curves: Mapping[str, Series], prefix: str, score: str) -> dict[str, Series]:
    """``<prefix><class>/<score>`` curves by class name (one name between prefix and score)."""
    found = {}
    for name, series in curves.items():
        if name.startswith(prefix) and name.endswith(f"/{score}"):
            middle = name[len(prefix) : -len(score) - 1]
            if middle and "/" not in middle and len(series[0]):
                found[middle] = series
    return found


def prediction_report_figure(
    sections: Sequence[Mapping[str, np.ndarray]],
    section_names: Sequence[str],
    sweeps: Mapping[str, Sequence[Mapping[str, float]]],
    title: str = "",
) -> plt.Figure:
    """The report: one row per section (raw | p(class) per foreground class | segmentation |
    labels) and the threshold sweep of every foreground class on the right.

    Args:
        sections: per row, 2D (y, x) arrays under ``raw``, ``p(<class>)`` (0-1) for each
            foreground class, ``segmentation`` and ``labels`` (class ids); a missing key leaves
            its panel empty.
        section_names: a label per row, e.g. ``z 37 = 370 nm`` (world position).
        sweeps: per foreground class, items ``{"threshold", "f1", "iou", "precision",
            "recall"}`` (see `incasem.metrics.ThresholdHistograms.sweep`); may be empty. One
            class: all four scores; several: each class's F1 and IoU.
        title: figure title.
    """
    rows = max(len(sections), 1)
    classes = [key for key in (sections[0] if sections else {}) if key.startswith("p(")]
    panels = (
        ("raw", "raw", "gray", (None, None)),
        *((key, key, "magma", (0, 1)) for key in classes or ["probability"]),
        ("segmentation", "segmentation", "tab10", (0, 9)),
        ("labels", "labels", "tab10", (0, 9)),
    )
    figure = plt.figure(figsize=(2.5 * (len(panels) + 2), 3.2 * rows), constrained_layout=True)
    grid = figure.add_gridspec(rows, len(panels) + 2)
    for row, (section, name) in enumerate(zip(sections, section_names, strict=True)):
        for column, (key, heading, cmap, (vmin, vmax)) in enumerate(panels):
            axis = figure.add_subplot(grid[row, column])
            if key in section:
                axis.imshow(section[key], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            else:
                axis.text(0.5, 0.5, "none", ha="center", va="center", transform=axis.transAxes)
            axis.set_title(f"{heading} ({name})", fontsize=9)
            axis.set_xlabel("x (voxels)", fontsize=8)
            axis.set_ylabel("y (voxels)", fontsize=8)
            axis.tick_params(labelsize=7)
    axis = figure.add_subplot(grid[:, len(panels) :])
    drawn = {name: sweep for name, sweep in sweeps.items() if sweep}
    if drawn:
        scores = SCORES if len(drawn) == 1 else ("f1", "iou")
        best_text = []
        for name, sweep in drawn.items():
            thresholds = [item["threshold"] for item in sweep]
            for score in scores:
                label = score if len(drawn) == 1 else f"{name} {score}"
                axis.plot(thresholds, [item[score] for item in sweep], marker=".", label=label)
            best = max(sweep, key=lambda item: item["f1"])
            axis.axvline(best["threshold"], color="gray", linestyle="--", linewidth=1)
            best_text.append(f"{name} {best['f1']:.3f} at {best['threshold']:.2f}")
        axis.set_title("threshold sweep, best F1: " + "; ".join(best_text), fontsize=9)
        axis.legend(loc="best")
        axis.set_ylim(-0.02, 1.02)
    else:
        axis.text(0.5, 0.5, "no metrics", ha="center", va="center", transform=axis.transAxes)
        axis.set_title("threshold sweep")
    axis.set_xlabel("foreground threshold (probability)")
    axis.set_ylabel("score")
    axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure
