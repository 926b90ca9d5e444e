"""The Sacred front end shared by ``scripts/train.py`` and ``scripts/predict.py``.

Both commands parse their own flags with argparse and hand Sacred only what it is good at:
the ``with`` clause (YAML/JSON files and ``key=value`` updates, later ones winning), the run's
record (config, captured output, metrics, artifacts) and its observers. Keeping that in one
place means one reading of the ``with`` clause, one way of resolving the configuration before a
run is recorded (so bad input fails with one line and leaves no run behind), and the same
observers, output filter and run options for every kind of run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError
from incasem.tracking.config_layers import check_config_files, resolve_layers


def with_clause(
    arguments: Sequence[str], required: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """Sacred's ``with`` clause: the nested ``key=value`` updates and the config files named.

    Args:
        arguments: the words after the command's own flags, ``with`` first.
        required: whether non-empty ``arguments`` must start with ``with`` (else the first word
            is refused as unexpected); ``False`` accepts them with or without it.

    Raises:
        IncasemError: an unexpected first word, or a config file that cannot be read (one line
            naming it).
    """
    from sacred.arg_parser import get_config_updates

    words = list(arguments)
    if words and words[0] == "with":
        words = words[1:]
    elif words and required:
        raise IncasemError(f"unexpected argument {words[0]!r}; config updates follow 'with'")
    config_updates, files = get_config_updates(words)
    check_config_files(files)
    return config_updates, list(files)


def resolve_config(
    defaults: dict[str, Any], config_updates: Mapping[str, Any], files: Sequence[str]
) -> dict[str, Any]:
    """The configuration Sacred will run with: ``defaults`` < ``files`` < ``config_updates``.

    Computed before the run so that a bad request fails before Sacred records anything;
    ``config_updates`` is left untouched (Sacred receives it as it was given).
    """
    return resolve_layers(defaults, files, json.loads(json.dumps(config_updates)))


def new_experiment(
    name: str,
    defaults: dict[str, Any],
    runs_dir: str | Path,
    main: Callable[..., Any],
    mongodb: str | None = None,
    continue_id: str | None = None,
) -> Any:
    """A Sacred experiment recorded under ``runs_dir`` (and in MongoDB for a ``mongodb`` URL).

    Args:
        name: the experiment's name in the run records.
        defaults: the configuration's defaults.
        runs_dir: folder of the file observer; one sub-folder per run.
        main: the experiment's main function (Sacred injects ``_config`` and ``_run`` by
            parameter name).
        mongodb: ``mongodb://HOST[:PORT][/DATABASE]`` or None.
        continue_id: a run to record into again (`incasem.tracking.observers`), or None.

    Captured output is stored with progress bars' carriage returns applied, so ``cout.txt``
    reads as the terminal showed it.
    """
    from sacred import Experiment
    from sacred.utils import apply_backspaces_and_linefeeds

    from incasem.tracking.observers import add_observers

    experiment = Experiment(name, save_git_info=False)
    experiment.add_config(defaults)
    experiment.captured_out_filter = apply_backspaces_and_linefeeds
    add_observers(experiment, runs_dir, mongodb, continue_id)
    experiment.main(main)
    return experiment


def run_experiment(
    experiment: Any,
    config_updates: dict[str, Any],
    files: Sequence[str],
    *,
    name: str | None = None,
    run_id: str | None = None,
    capture: str | None = None,
    force: bool = False,
) -> Any:
    """Run ``experiment`` with the ``with`` clause's updates and files; returns Sacred's run.

    Args:
        name: the run's name (``--name``), or None for the experiment's.
        run_id: record under this id (``--id``; a continued training run), or None for a new
            one.
        capture: Sacred's output capture mode (``"sys"``, ``"fd"``, ``"no"``) or None for its
            default.
        force: run even with configuration keys the defaults do not know (``--force``); the
            caller has already warned about them.
    """
    options: dict[str, Any] = {}
    if name:
        options["--name"] = name
    if run_id is not None:
        options["--id"] = run_id
    if capture is not None:
        options["--capture"] = capture
    if force:
        options["--force"] = True
    return experiment.run(config_updates=config_updates, named_configs=list(files), options=options)
