"""The Lucchi yardstick's report: ``<out>.json`` (every run), ``<out>.md`` (tables, mean ± sd
over seeds) and ``<out>.png`` (slab IoU against training minutes)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from lucchi_scoring import BOX_DATA, REPO, TRAIN_DATA, fmt_summary  # noqa: E402

from incasem.atomic import write_atomic  # noqa: E402

TABLE_MINUTES = (10, 20, 40, 60)
CITATION = (
    "EPFL hippocampus FIB-SEM (../shared/data/epfl_lucchi_train.zarr): Lucchi, Smith, Achanta, "
    "Knott, Fua, 'Supervoxel-based segmentation of mitochondria in EM image stacks with learned "
    "shape features', IEEE TMI 2012"
)


def at_minutes(validations: list[dict[str, Any]], minutes: float) -> dict[str, Any] | None:
    """The last validation at or before ``minutes`` of training; a run with that budget stops
    at the first iteration past it, so its final validation (up to one step, a few seconds,
    later) counts as at ``minutes``."""
    done = [v for v in validations if v["training_minutes"] <= minutes + 0.1]
    return done[-1] if done else None


def _pair(records: list[dict[str, Any] | None]) -> str:
    """``best / 0.5`` IoU, each mean ± sd over the seeds that have a record."""
    found = [r for r in records if r is not None and "iou" in r]
    if not found or len(found) < len(records):
        return "—"
    best = fmt_summary([r["best_iou"] for r in found if "best_iou" in r])
    return f"{best} / {fmt_summary([r['iou'] for r in found])}"


def _curve_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for label, row in sorted(results.get("unet", {}).items()):
        runs = row["runs"]
        cells = [_pair([at_minutes(r["validations"], m) for r in runs]) for m in TABLE_MINUTES]
        voxel = 5 * row["scale"]
        rows.append(f"| U-Net `{label}` ({voxel} nm) | {len(runs)} | " + " | ".join(cells) + " |")
    forest = results.get("forest")
    if forest:
        runs = forest["runs"]
        cells = [
            _pair([r["scores"]["slab"] if r["minutes"] <= m else None for r in runs])
            for m in TABLE_MINUTES
        ]
        rows.append(f"| random forest | {len(runs)} | " + " | ".join(cells) + " |")
    return rows


def _final_rows(results: dict[str, Any]) -> list[str]:
    rows = []

    def row(name: str, scored: list[dict[str, Any]], calibrated: str, minutes: str) -> str:
        slab = [s["slab"] for s in scored]
        crop = [s["crop"] for s in scored]
        return (
            f"| {name} | {len(scored)} | {fmt_summary([s['best_iou'] for s in slab])} | "
            f"{fmt_summary([s['best_threshold'] for s in slab])} | "
            f"{fmt_summary([s['iou'] for s in slab])} | {calibrated} | "
            f"{fmt_summary([c['at_pick_iou'] for c in crop])} | "
            f"{fmt_summary([c['best_iou'] for c in crop])} | {minutes} |"
        )

    for label, unet in sorted(results.get("unet", {}).items()):
        for which in ("final", "best"):
            chosen = [r["checkpoints"][which] for r in unet["runs"]]
            calibrated = fmt_summary([c["calibrated"]["slab"]["iou"] for c in chosen])
            iterations = "/".join(str(c["iteration"]) for c in chosen)
            rows.append(
                row(
                    f"U-Net `{label}`, {which} (iteration {iterations})",
                    [c["scores"] for c in chosen],
                    calibrated,
                    f"{unet['minutes_budget']:g}",
                )
            )
    forest = results.get("forest")
    if forest:
        runs = forest["runs"]
        rows.append(
            row(
                "random forest",
                [r["scores"] for r in runs],
                "—",
                fmt_summary([r["minutes"] for r in runs]).replace(".000", ""),
            )
        )
    return rows


def markdown_report(report: dict[str, Any]) -> str:
    """The report's tables: slab IoU at 10/20/40/60 minutes, and every method at 5 nm."""
    results = report["results"]
    lines = [
        "# Lucchi mitochondria: the whole-slab yardstick",
        "",
        f"Data: {CITATION}. Train z < 130; checkpoints, thresholds and scores on the whole slab "
        "z >= 130 (35x768x1024 voxels at 5 nm, 12 mitochondria); the 35x384x512 crop at its "
        "centre (3 mitochondria, the earlier validation) as a second column. Every cell is mean "
        "± sample sd over the seeds.",
        "",
        "Slab IoU at the best-F1 threshold / at 0.5 after that many training minutes (U-Net: "
        "the last validation before then, validation time excluded, at the model's voxel size; "
        "forest: its result from the minute it is done, features, fitting and prediction "
        "included):",
        "",
        "| method | seeds | " + " | ".join(f"{m} min" for m in TABLE_MINUTES) + " |",
        "|---|---|" + "---|" * len(TABLE_MINUTES),
        *_curve_rows(results),
        "",
        "At the data's 5 nm (foreground IoU; the crop at the threshold picked on the slab, and at "
        "the crop's own best):",
        "",
        "| method | seeds | slab, best threshold | that threshold | slab at 0.5 | slab at the "
        "model's threshold | crop at the slab's threshold | crop, its own best | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
        *_final_rows(results),
    ]
    forest = results.get("forest")
    if forest:
        f = forest["fit_forest"]
        lines += [
            "",
            f"Random forest: `incasem.annotate.unary.fit_forest` (the annotator's), {f['features']}"
            f" filter features (sigmas {', '.join(f'{v:g}' for v in f['sigmas_voxels'])} voxels),"
            f" {f['trees']} trees, {f['samples_per_class']:,} training voxels per class from "
            f"{f['seed_tiles']} tiles of {'x'.join(map(str, f['seed_tile_shape']))} voxels, "
            f"{f['jobs']} jobs; machine: {forest['machine']['cpus']} cores, load "
            f"{forest['machine']['load_average_1_5_15_min']}.",
        ]
    lines += ["", "Commands:", ""]
    lines += [
        f"- `{command}`" for r in _records(results) for command in r.get("commands", [r["command"]])
    ]
    return "\n".join(lines) + "\n"


# What a row records about where and when its runs ran, not how: rows that differ only here
# are the same method, and their runs of different seeds belong together.
_RUN_INFO_KEYS = ("runs", "command", "commands", "date", "machine", "seeds")


def merge_seeds(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The row of ``new``'s runs together with ``old``'s runs of the seeds ``new`` did not run.

    A budget of two 60-minute seeds does not fit one sitting, so seeds are run one command at a
    time under the same label; a run of a seed that is already there replaces it. ``old`` is
    dropped when its settings differ (any key but `_RUN_INFO_KEYS`): then it measured something
    else.
    """
    if old is None or _settings(old) != _settings(new):
        return {**new, "commands": [new["command"]]}
    seeds = {run["seed"] for run in new["runs"]}
    runs = [r for r in old["runs"] if r["seed"] not in seeds] + new["runs"]
    commands = [c for c in old.get("commands", [old["command"]]) if c != new["command"]]
    return {
        **new,
        "runs": sorted(runs, key=lambda r: r["seed"]),
        "seeds": sorted(r["seed"] for r in runs),
        "commands": [*commands, new["command"]],
    }


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _RUN_INFO_KEYS}


def _records(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *results.get("unet", {}).values(),
        *([results["forest"]] if "forest" in results else []),
    ]


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Slab IoU (best threshold) against training minutes: every U-Net seed, the forest's."""
    results = report["results"]
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    right = float(max(TABLE_MINUTES))
    for i, (label, row) in enumerate(sorted(results.get("unet", {}).items())):
        for j, run in enumerate(row["runs"]):
            curve = [v for v in run["validations"] if "best_iou" in v]
            ax.plot(
                [v["training_minutes"] for v in curve],
                [v["best_iou"] for v in curve],
                "-o",
                color=f"C{i}",
                ms=3,
                label=f"U-Net {label}" if j == 0 else None,
            )
    forest = results.get("forest")
    if forest:
        for j, run in enumerate(forest["runs"]):
            m, iou = run["minutes"], run["scores"]["slab"]["best_iou"]
            right = max(right, m * 1.1)
            ax.plot([m], [iou], "*", color="k", ms=12, label="random forest" if j == 0 else None)
            ax.hlines([iou], m, right, colors="k", lw=0.8)
    ax.set_xlim(0, right)
    ax.set_ylim(0, 1)
    ax.set_xlabel("training minutes (U-Net: validation time excluded; forest: all work)")
    ax.set_ylabel("foreground IoU at the best threshold, slab z >= 130")
    ax.set_title("Lucchi mitochondria (EPFL, 5 nm FIB-SEM): the whole slab")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), overwrite=True)
    plt.close(fig)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, replacing it."""
    write_atomic(path, lambda tmp: tmp.write_text(text), overwrite=True)


def write_report(out: Path, update: Callable[[dict[str, Any]], None]) -> None:
    """Merge this run's results into ``<out>.json`` and rewrite the PNG and the tables."""
    json_path = out.with_name(out.name + ".json")
    report: dict[str, Any] = {}
    if json_path.is_file():
        report = json.loads(json_path.read_text())
    report.setdefault("benchmark", "lucchi_accuracy (whole-slab yardstick)")
    report["data"] = {
        "citation": CITATION,
        "training": str(TRAIN_DATA.relative_to(REPO)),
        **{name: str(path.relative_to(REPO)) for name, path in BOX_DATA.items()},
        "scoring": "foreground (mitochondria) IoU/F1/precision/recall at p >= 0.5 and at the "
        "best-F1 uint8 threshold of the slab, ThresholdHistograms over each box",
    }
    report.setdefault("results", {})
    update(report["results"])
    report["updated"] = datetime.datetime.now().isoformat(timespec="seconds")
    write_text(json_path, json.dumps(report, indent=2) + "\n")
    plot_report(report, out.with_name(out.name + ".png"))
    write_text(out.with_name(out.name + ".md"), markdown_report(report))
    print(f"wrote {json_path} (.png, .md)", flush=True)
