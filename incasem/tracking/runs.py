"""Browse the run store: every training and prediction run, read from its folder alone.

The original kept runs in MongoDB only, so with no server nobody could see what had been
trained. Our runs are Sacred ``FileStorageObserver`` folders (``config.json``, ``run.json``,
``metrics.json``), training runs under ``<runs>/<id>/`` and predictions under
``<runs>/predictions/<id>/``; this module reads those files (and ``best.json`` of a training run)
and nothing else, so listing works on a laptop that has only a copy of the folder.

Run ids: a training run is ``N``, a prediction ``pN`` (also accepted: ``predictions/N``).
Sacred's metric files hold ``{name: {"steps": [...], "values": [...], "timestamps": [...]}}``;
steps of training metrics are iterations.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError
from incasem.tracking.run_folder import CHECKPOINT_NAME

#: Sacred writes a heartbeat every 10 s; a RUNNING run silent for longer than this was killed.
STALE_AFTER_SECONDS = 300

PREDICTIONS = "predictions"


@dataclass
class Curve:
    """One logged metric: ``steps`` (iterations) and ``values``, in logging order."""

    name: str
    steps: list[int]
    values: list[float]

    def summary(self) -> dict[str, Any]:
        """Points, first/last/min/max values with the step each was logged at."""
        if not self.values:
            return {"name": self.name, "points": 0}
        low = min(range(len(self.values)), key=self.values.__getitem__)
        high = max(range(len(self.values)), key=self.values.__getitem__)
        return {
            "name": self.name,
            "points": len(self.values),
            "first": [self.steps[0], self.values[0]],
            "last": [self.steps[-1], self.values[-1]],
            "min": [self.steps[low], self.values[low]],
            "max": [self.steps[high], self.values[high]],
        }


@dataclass
class RunRecord:
    """What a run folder says about its run.

    Attributes:
        id: ``N`` for a training run, ``pN`` for a prediction.
        kind: ``training`` or ``prediction``.
        path: the run folder.
        name: Sacred experiment name (``--name``).
        status: Sacred status (COMPLETED, FAILED, INTERRUPTED, RUNNING), or STALE for a RUNNING
            run whose heartbeat stopped more than `STALE_AFTER_SECONDS` ago.
        start: start time (UTC, ISO format, seconds), or "".
        iterations: training: last iteration reached; prediction: iteration of the model used.
        best_f1: training: best validation F1 (at its best threshold) of a checkpointed
            iteration (> 0); prediction: mean F1 over the scored entries. With several
            foreground classes, the mean over them (`incasem.metrics.foreground_mean`). None if
            not scored.
        best_iteration: the iteration of ``best_f1`` (prediction: of the model).
        class_f1: the F1 behind ``best_f1`` per foreground class (empty for runs that logged
            none).
        data: the data configs (prediction: or the input container) the run used.
        config: the run's full Sacred configuration.
        info: the run's ``run.json``.
        curves: every logged metric.
    """

    id: str
    kind: str
    path: Path
    name: str
    status: str
    start: str
    iterations: int | None
    best_f1: float | None
    best_iteration: int | None
    data: list[str]
    config: dict[str, Any] = field(repr=False)
    info: dict[str, Any] = field(repr=False)
    curves: dict[str, Curve] = field(repr=False)
    class_f1: dict[str, float] = field(default_factory=dict)


def _class_f1(run_dir: Path, curves: dict[str, Curve], iteration: int | None) -> dict[str, float]:
    """A training run's F1 per foreground class at ``iteration``: from ``best.json`` (when it
    records the chosen checkpoint) or the ``validation/<class>/best_f1`` curves."""
    best = _read_json(run_dir / "best.json", required=False)
    if best.get("iteration") == iteration and isinstance(best.get("classes"), dict):
        return {str(k): float(v) for k, v in best["classes"].items()}
    found = {}
    for name, curve in curves.items():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "validation" and parts[2] == "best_f1":
            values = dict(zip(curve.steps, curve.values, strict=True))
            if iteration in values:
                found[parts[1]] = float(values[iteration])
    return found


def _entry_class_f1(curves: dict[str, Curve], entries: set[str]) -> dict[str, float]:
    """A prediction's F1 per foreground class, the mean over its scored entries."""
    per_class: dict[str, list[float]] = {}
    for name, curve in curves.items():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] in entries and parts[2] == "f1":
            per_class.setdefault(parts[1], []).append(curve.values[-1])
    return {name: sum(v) / len(v) for name, v in per_class.items()}


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise IncasemError(f"{path}: missing (not a Sacred run folder)")
        return {}
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise IncasemError(f"{path}: unreadable ({e})") from None
    if not isinstance(content, dict):
        raise IncasemError(f"{path}: expected a JSON object")
    return content


def read_curves(run_dir: str | os.PathLike) -> dict[str, Curve]:
    """Every metric of a run folder's ``metrics.json`` (empty if there is none yet), by step.

    A continued run appends to the same file; where a session logged a step again (it resumed
    from a checkpoint older than the last logged step) the later value is kept.
    """
    path = Path(run_dir) / "metrics.json"
    curves = {}
    for name, metric in _read_json(path, required=False).items():
        try:
            points = dict(zip((int(s) for s in metric["steps"]), metric["values"], strict=True))
        except (KeyError, TypeError, ValueError):
            raise IncasemError(f"{path}: metric {name!r} has no steps/values lists") from None
        steps = sorted(points)
        curves[name] = Curve(name, steps, [points[s] for s in steps])
    return curves


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _status(info: dict[str, Any], now: datetime.datetime) -> str:
    status = str(info.get("status", "UNKNOWN"))
    heartbeat = _parse_time(info.get("heartbeat"))
    if status == "RUNNING" and heartbeat is not None:
        if (now - heartbeat).total_seconds() > STALE_AFTER_SECONDS:
            return "STALE"
    return status


def _split(paths: Any) -> list[str]:
    if not paths:
        return []
    return [p.strip() for p in str(paths).split(",") if p.strip()]


def _best_validation(curves: dict[str, Curve]) -> tuple[float | None, int | None]:
    """Best validation F1 among checkpointed iterations (> 0), as training picks it: F1 at each
    checkpoint's own best threshold (``validation/best_f1``), or at 0.5 (``validation/f1``) for
    runs from before calibrated thresholds."""
    curve = curves.get("validation/best_f1") or curves.get("validation/f1")
    if curve is None:
        return None, None
    points = [(v, s) for s, v in zip(curve.steps, curve.values, strict=True) if s > 0]
    if not points:
        return None, None
    value, step = max(points, key=lambda p: (p[0], -p[1]))
    return float(value), step


def _chosen_checkpoint(run_dir: Path, curves: dict[str, Curve]) -> tuple[float | None, int | None]:
    """The validation score and iteration of the checkpoint training chose (``best.json``, which
    prediction uses), or, for a run without one yet, the best validated iteration."""
    best = _read_json(run_dir / "best.json", required=False)
    value, iteration = best.get("value"), best.get("iteration")
    if isinstance(value, int | float) and isinstance(iteration, int):
        return float(value), iteration
    return _best_validation(curves)


def _model_iteration(config: dict[str, Any], result: dict[str, Any]) -> int | None:
    checkpoint = (result or {}).get("checkpoint") or config.get("checkpoint") or ""
    match = CHECKPOINT_NAME.match(Path(str(checkpoint)).name)
    if match:
        return int(match.group(1))
    iteration = config.get("iteration")
    return int(iteration) if isinstance(iteration, int) else None


def read_run(
    run_dir: str | os.PathLike, kind: str, now: datetime.datetime | None = None
) -> RunRecord:
    """Read one run folder into a `RunRecord`.

    Args:
        run_dir: ``<runs>/<N>`` (training) or ``<runs>/predictions/<N>`` (prediction).
        kind: ``training`` or ``prediction``.
        now: the time to judge heartbeats against (default: now, UTC).

    Raises `IncasemError` naming the file if ``run.json``/``config.json`` is missing or broken.
    """
    run_dir = Path(run_dir)
    info = _read_json(run_dir / "run.json", required=True)
    config = _read_json(run_dir / "config.json", required=True)
    curves = read_curves(run_dir)
    chosen = _chosen_checkpoint(run_dir, curves) if kind == "training" else (None, None)
    return _record(run_dir.name, kind, run_dir, info, config, curves, chosen, now)


def _record(
    number: str,
    kind: str,
    path: Path,
    info: dict[str, Any],
    config: dict[str, Any],
    curves: dict[str, Curve],
    chosen: tuple[float | None, int | None],
    now: datetime.datetime | None,
) -> RunRecord:
    """The `RunRecord` of run ``number`` from its Sacred record (run info, config, metrics) and,
    for training, the (F1, iteration) of the checkpoint it chose."""
    now = now or datetime.datetime.now(datetime.UTC)
    start = _parse_time(info.get("start_time"))
    result = info.get("result") if isinstance(info.get("result"), dict) else {}
    if kind == "training":
        run_id = number
        training = config.get("training", {})
        data = _split(training.get("data")) + _split(config.get("validation", {}).get("data"))
        steps = [s for c in curves.values() if not c.name.startswith("validation") for s in c.steps]
        iterations = result.get("iterations", [None, None])[-1] if result else None
        if iterations is None and steps:
            iterations = max(steps)
        best_f1, best_iteration = chosen
        class_f1 = _class_f1(path, curves, best_iteration)
    else:
        run_id = f"p{number}"
        prediction = config.get("prediction", {})
        data = _split(prediction.get("data")) or _split(prediction.get("input"))
        iterations = _model_iteration(prediction, result)
        entries = {n.split("/")[0] for n in curves if n.endswith("/f1")}
        # Entry scores are <entry>/f1 (the mean over foreground classes) and <entry>/<class>/f1.
        scores = [curves[f"{e}/f1"].values[-1] for e in entries if f"{e}/f1" in curves]
        best_f1 = sum(scores) / len(scores) if scores else None
        best_iteration = iterations
        class_f1 = _entry_class_f1(curves, entries)
    return RunRecord(
        id=run_id,
        kind=kind,
        path=path,
        name=str(info.get("experiment", {}).get("name", "")),
        status=_status(info, now),
        start=start.strftime("%Y-%m-%d %H:%M:%S") if start else "",
        iterations=iterations,
        best_f1=best_f1,
        best_iteration=best_iteration,
        data=data,
        config=config,
        info=info,
        curves=curves,
        class_f1=class_f1,
    )


def _numbered(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(found, key=lambda p: int(p.name))


def list_runs(runs_dir: str | os.PathLike) -> list[RunRecord]:
    """Every training run (``<runs>/<N>``) and prediction (``<runs>/predictions/<N>``), ordered
    by start time. Folders without ``run.json`` (a run starting right now) are left out.

    Raises `IncasemError` if ``runs_dir`` does not exist.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise IncasemError(f"{runs_dir}: no runs folder (set --runs-dir)")
    now = datetime.datetime.now(datetime.UTC)
    records = []
    for kind, folder in (("training", runs_dir), ("prediction", runs_dir / PREDICTIONS)):
        for run_dir in _numbered(folder):
            if (run_dir / "run.json").is_file():
                records.append(read_run(run_dir, kind, now))
    return sorted(records, key=lambda r: (r.start, r.kind, int(r.id.lstrip("p"))))


def _iso(value: Any) -> Any:
    """A BSON date as the ISO text of Sacred's run.json (UTC); anything else unchanged."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=value.tzinfo or datetime.UTC).isoformat()
    return value


def list_database_runs(mongodb: str) -> list[RunRecord]:
    """Every run recorded in MongoDB database ``mongodb`` (``mongodb://HOST[:PORT][/DATABASE]``)
    by ``--mongodb``, as `list_runs` orders them. A run with a ``prediction`` config is a
    prediction (``pN``), else training (``N``), N being its document id; a training run's best
    F1 is that of its best validated iteration. ``path`` is ``DATABASE/runs/N``.

    Raises `IncasemError` if the server does not answer.
    """
    import pymongo
    import pymongo.errors

    from incasem.tracking.observers import SERVER_TIMEOUT_MS, split_mongodb_url

    url, database = split_mongodb_url(mongodb)
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True)
    now = datetime.datetime.now(datetime.UTC)
    records = []
    try:
        db = client[database]
        for document in db.runs.find({}, {"captured_out": 0}):
            info = {key: _iso(value) for key, value in document.items()}
            config = document.get("config") or {}
            kind = "prediction" if "prediction" in config else "training"
            curves = {
                m["name"]: Curve(m["name"], [int(s) for s in m["steps"]], m["values"])
                for m in db.metrics.find({"run_id": document["_id"]})
            }
            chosen = _best_validation(curves) if kind == "training" else (None, None)
            number = str(document["_id"])
            path = Path(database) / "runs" / number
            records.append(_record(number, kind, path, info, config, curves, chosen, now))
    except pymongo.errors.PyMongoError as e:
        raise IncasemError(f"--mongodb {mongodb}: {str(e).split(' (configured')[0]}") from None
    finally:
        client.close()
    return sorted(records, key=lambda r: (r.start, r.kind, int(r.id.lstrip("p"))))


def run_location(runs_dir: str | os.PathLike, run_id: str) -> tuple[Path, str]:
    """The folder and kind of run ``N`` (training), ``pN`` or ``predictions/N`` (prediction).

    Raises `IncasemError` naming the folder if there is no such run.
    """
    runs_dir = Path(runs_dir)
    text = str(run_id).strip()
    if text.startswith("p") and text[1:].isdigit():
        path, kind = runs_dir / PREDICTIONS / text[1:], "prediction"
    elif text.startswith(f"{PREDICTIONS}/") and text.partition("/")[2].isdigit():
        path, kind = runs_dir / text, "prediction"
    elif text.isdigit():
        path, kind = runs_dir / text, "training"
    else:
        raise IncasemError(f"run id {run_id!r}: expected N (training) or pN (prediction)")
    if not (path / "run.json").is_file():
        raise IncasemError(f"{path}: no such run (no run.json)")
    return path, kind


def find_run(runs_dir: str | os.PathLike, run_id: str) -> RunRecord:
    """The `RunRecord` of run ``run_id`` (see `run_location`)."""
    path, kind = run_location(runs_dir, run_id)
    return read_run(path, kind)


def training_history(runs_dir: str | os.PathLike, record: RunRecord) -> dict[str, Curve]:
    """The curves of training run ``record`` (of ``runs_dir``) and of every run that continued
    it (``--continue_run``, recorded as ``training.continue_id``), merged by step in start order:
    a step logged again by a later run takes the later value. A continuation gives the history
    of the run it continued.

    Each run folder is read once (``record`` not again); other folders' ``config.json`` is read
    to find the continuations. Raises `IncasemError` if the continued run is missing.
    """
    runs_dir = Path(runs_dir)
    known = {record.id: record}  # id -> record of the runs read so far
    base = str(record.config.get("training", {}).get("continue_id") or record.id)
    if base not in known:
        known[base] = find_run(runs_dir, base)
    runs = [known[base]]
    for other in _numbered(runs_dir):
        if other.name == base or not (other / "run.json").is_file():
            continue
        run = known.get(other.name)
        config = run.config if run else _read_json(other / "config.json", required=False)
        if str(config.get("training", {}).get("continue_id")) == base:
            runs.append(run or read_run(other, "training"))
    merged: dict[str, dict[int, float]] = {}
    for run in sorted(runs, key=lambda r: r.start):
        for name, curve in run.curves.items():
            merged.setdefault(name, {}).update(zip(curve.steps, curve.values, strict=True))
    return {
        name: Curve(name, sorted(points), [points[s] for s in sorted(points)])
        for name, points in merged.items()
    }


def resumed_curves(
    run_dir: str | os.PathLike, iteration: int
) -> dict[str, tuple[list[int], list[float]]]:
    """Loss and validation curves of the run folder ``run_dir`` (and its continuations) up to
    ``iteration``, for training to draw a continued run's curves from its start; empty if
    ``run_dir`` is not a training run of a runs folder."""
    run_dir = Path(run_dir)
    try:
        record = find_run(run_dir.parent, run_dir.name)
        if record.kind != "training":
            return {}
        history = training_history(run_dir.parent, record)
    except IncasemError:
        return {}
    curves = {}
    for name, curve in history.items():
        if name == "loss" or name.startswith("validation/"):
            kept = [
                (s, v) for s, v in zip(curve.steps, curve.values, strict=True) if s <= iteration
            ]
            curves[name] = ([s for s, _ in kept], [v for _, v in kept])
    return curves


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _per_class(class_f1: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in class_f1.items())


def format_table(records: list[RunRecord]) -> str:
    """A plain-text table: id, name, kind, status, start, iterations, best F1 (iteration), data.

    For a prediction, ``iterations`` and the F1's iteration are the model's iteration and F1 is
    the mean over its scored entries. With several foreground classes, the F1 is their mean and
    each class's follows in parentheses.
    """
    header = ["id", "name", "kind", "status", "start (UTC)", "iterations", "best F1", "data"]
    rows = [header]
    for r in records:
        best = "-" if r.best_f1 is None else f"{r.best_f1:.4f} @ {_cell(r.best_iteration)}"
        if len(r.class_f1) > 1:
            best += f" ({_per_class(r.class_f1)})"
        data = ", ".join(Path(d).name if "/" in d else d for d in r.data) or "-"
        rows.append([r.id, r.name, r.kind, r.status, r.start, _cell(r.iterations), best, data])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def format_run(record: RunRecord) -> str:
    """Several lines about one run: the table fields, stop time, result and curve summaries."""
    info = record.info
    stop = _parse_time(info.get("stop_time"))
    lines = [
        f"run {record.id} ({record.kind}) {record.name}",
        f"  folder:     {record.path}",
        f"  status:     {record.status}",
        f"  started:    {record.start or '-'} UTC",
        f"  stopped:    {stop.strftime('%Y-%m-%d %H:%M:%S') + ' UTC' if stop else '-'}",
    ]
    if record.kind == "training":
        continued = record.config.get("training", {}).get("continue_id")
        sessions = record.info.get("sessions")
        if isinstance(sessions, list) and sessions:
            lines.append(f"  sessions:   {len(sessions) + 1} (continued with --continue_run)")
        elif continued and str(continued) != record.id:  # recorded by incasem before 2026-12
            lines.append(f"  continues:  run {continued} (trains in its folder)")
        lines.append(f"  iterations: {_cell(record.iterations)}")
        lines.append(
            f"  best F1:    {_cell(record.best_f1)} at iteration {_cell(record.best_iteration)}"
        )
        if len(record.class_f1) > 1:
            lines.append(f"  per class:  {_per_class(record.class_f1)} (best F1 is their mean)")
    else:
        result = info.get("result") if isinstance(info.get("result"), dict) else {}
        checkpoint = result.get("checkpoint") or record.config.get("prediction", {}).get(
            "checkpoint"
        )
        lines.append(f"  model:      {checkpoint or '-'} (iteration {_cell(record.iterations)})")
        if result.get("group"):
            resume = result.get("prediction_id")
            again = f" (resume with --resume {resume})" if resume is not None else ""
            lines.append(f"  outputs:    {result['group']}{again}")
        lines.append(f"  F1:         {_cell(record.best_f1)} (mean over scored entries)")
        if len(record.class_f1) > 1:
            lines.append(f"  per class:  {_per_class(record.class_f1)} (F1 is their mean)")
    lines.append(f"  data:       {', '.join(record.data) or '-'}")
    if record.kind == "training":
        best = _read_json(record.path / "best.json", required=False)
        if best:
            lines.append(
                f"  best.json:  iteration {best.get('iteration')} ({best.get('checkpoint')})"
            )
    if info.get("fail_trace"):
        lines.append(f"  error:      {info['fail_trace'][-1].strip()}")
    lines.append("  metrics (points; first, last, min, max as value @ step):")
    if not record.curves:
        lines.append("    none logged")
    for curve in record.curves.values():
        s = curve.summary()
        if not s["points"]:
            continue
        parts = [f"{_cell(float(s[k][1]))} @ {s[k][0]}" for k in ("first", "last", "min", "max")]
        lines.append(f"    {curve.name}: {s['points']}; " + "; ".join(parts))
    return "\n".join(lines)
