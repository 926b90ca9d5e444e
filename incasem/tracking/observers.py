"""Where Sacred records runs.

Every training and prediction run is recorded by a `FileStorageObserver` under the runs folder,
so nothing needs a server (the original crashed without MongoDB). A MongoDB URL adds a
`MongoObserver` for labs that browse runs in Omniboard. Its ``failure_dir`` is always set: with
no server reachable, sacred 0.8.7 otherwise fails the run a second time with a ``TypeError``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sacred import Experiment
from sacred.observers import FileStorageObserver

from incasem.errors import IncasemError


def _split_mongodb_url(url: str) -> tuple[str, str]:
    """``mongodb://host:port/db`` -> (``mongodb://host:port``, ``db``); default db ``incasem``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("mongodb", "mongodb+srv"):
        raise IncasemError(f"--mongodb {url!r}: expected mongodb://HOST[:PORT][/DATABASE]")
    host, _, database = rest.partition("/")
    return f"{scheme}://{host}", database.split("?")[0] or "incasem"


def add_observers(experiment: Experiment, runs_dir: str | os.PathLike, mongodb: str | None = None):
    """Attach the file observer (always) and a MongoDB observer (if ``mongodb`` is a URL).

    Args:
        experiment: the Sacred experiment.
        runs_dir: folder holding one sub-folder per run (created if missing).
        mongodb: ``mongodb://HOST[:PORT][/DATABASE]``, or None.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    experiment.observers.append(FileStorageObserver(str(runs_dir)))
    if mongodb:
        from sacred.observers import MongoObserver

        url, database = _split_mongodb_url(mongodb)
        experiment.observers.append(
            MongoObserver(
                url=url,
                db_name=database,
                failure_dir=str(runs_dir / "mongodb_failures"),
                serverSelectionTimeoutMS=5000,
            )
        )
