"""Where Sacred records runs.

Every training and prediction run is recorded by a `FileStorageObserver` under the runs folder,
so nothing needs a server (the original crashed without MongoDB). A MongoDB URL adds a
`MongoObserver` for labs that browse runs in Omniboard. An unreachable server fails no run: the
server is asked once, with a short timeout, before the run starts; if it does not answer, the
run is recorded in files only and one warning line says so (Sacred's observer would otherwise
end the run in two tracebacks). Its ``failure_dir`` is set too, for a server lost mid-run.

A continued training run (``--continue_run N``) is recorded as run N again, in its own folder:
one run, one id, one folder, whatever the number of sessions it took. Sacred appends metrics and
captured output there; ``run.json`` describes the latest session and lists the earlier ones
under ``sessions``. In MongoDB the continuation replaces the run's document (its metrics stay).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from sacred import Experiment
from sacred.observers import FileStorageObserver

from incasem.errors import IncasemError

logger = logging.getLogger(__name__)

#: How long to wait for a MongoDB server to answer before recording a run in files only.
SERVER_TIMEOUT_MS = 2000


def split_mongodb_url(url: str) -> tuple[str, str]:
    """``mongodb://host:port/db`` -> (``mongodb://host:port``, ``db``); default db ``incasem``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("mongodb", "mongodb+srv"):
        raise IncasemError(f"--mongodb {url!r}: expected mongodb://HOST[:PORT][/DATABASE]")
    host, _, database = rest.partition("/")
    return f"{scheme}://{host}", database.split("?")[0] or "incasem"


class ContinuingFileStorageObserver(FileStorageObserver):
    """A `FileStorageObserver` that records run ``continue_id`` in its existing folder.

    Args:
        basedir (str): the runs folder.
        continue_id (str | None): the run being continued; None records a new run as Sacred
            does. The run is started with Sacred's ``--id`` set to the same id.
    """

    def __init__(self, basedir: str, continue_id: str | None = None) -> None:
        super().__init__(basedir)
        self.continue_id = continue_id

    def _continuing(self, _id: Any) -> bool:
        return self.continue_id is not None and str(_id) == self.continue_id

    def _make_run_dir(self, _id: Any) -> None:
        if not self._continuing(_id):
            super()._make_run_dir(_id)
            return
        self.dir = os.path.join(self.basedir, self.continue_id)
        if not os.path.isfile(os.path.join(self.dir, "run.json")):
            raise IncasemError(f"--continue_run {self.continue_id}: {self.dir} holds no run")

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        earlier = None
        if self._continuing(_id):
            self._make_run_dir(_id)
            earlier = self._earlier_sessions()
        run_id = super().started_event(
            ex_info, command, host_info, start_time, config, meta_info, _id
        )
        if earlier is not None:
            self.run_entry["sessions"] = earlier
            self.save_json(self.run_entry, "run.json")
        return run_id

    def _earlier_sessions(self) -> list[dict[str, Any]]:
        """The sessions recorded in the run folder so far, oldest first."""
        with open(os.path.join(self.dir, "run.json")) as f:
            previous = json.load(f)
        session = {k: previous.get(k) for k in ("start_time", "stop_time", "status", "result")}
        return [*previous.get("sessions", []), session]


def mongodb_unreachable(url: str) -> str | None:
    """Why the MongoDB server at ``url`` (``mongodb://HOST[:PORT]``) does not answer a ping
    within `SERVER_TIMEOUT_MS`, or None when it does."""
    import pymongo
    import pymongo.errors

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as e:
        return str(e).split(" (configured")[0]
    finally:
        client.close()
    return None


def _mongo_observer(url: str, database: str, failure_dir: Path, continue_id: str | None):
    from sacred.observers import MongoObserver

    def observer(overwrite: int | None) -> MongoObserver:
        return MongoObserver(
            url=url,
            db_name=database,
            failure_dir=str(failure_dir),
            serverSelectionTimeoutMS=SERVER_TIMEOUT_MS,
            overwrite=overwrite,
        )

    if continue_id is not None:
        try:
            return observer(int(continue_id))
        except RuntimeError:  # the run was not mirrored to this database: insert it
            pass
    return observer(None)


def add_observers(
    experiment: Experiment,
    runs_dir: str | os.PathLike,
    mongodb: str | None = None,
    continue_id: str | None = None,
) -> None:
    """Attach the file observer (always) and a MongoDB observer (if ``mongodb`` is a URL).

    Args:
        experiment: the Sacred experiment.
        runs_dir: folder holding one sub-folder per run (created if missing).
        mongodb: ``mongodb://HOST[:PORT][/DATABASE]``, or None. A server that does not answer
            is left out with one warning: the run is recorded in files only.
        continue_id: the run a continuation records into (start it with Sacred's ``--id``
            option set to this id); None for a new run.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    experiment.observers.append(ContinuingFileStorageObserver(str(runs_dir), continue_id))
    if mongodb:
        url, database = split_mongodb_url(mongodb)
        reason = mongodb_unreachable(url)
        if reason is not None:
            logger.warning(
                "MongoDB %s not reached (%s): this run is recorded in %s only", mongodb, reason,
                runs_dir,
            )  # fmt: skip
            return
        experiment.observers.append(
            _mongo_observer(url, database, runs_dir / "mongodb_failures", continue_id)
        )


def run_folder(run: Any) -> Path:
    """The folder the file observer records ``run`` in (Sacred orders observers by priority,
    so the file observer need not be the first)."""
    return Path(next(o for o in run.observers if isinstance(o, FileStorageObserver)).dir)


def add_database_artifacts(run: Any, files: dict[str, str | os.PathLike]) -> None:
    """Upload ``files`` (artifact name -> path; missing files are left out) to the run's
    MongoDB record as Sacred artifacts, which Omniboard lists, shows and offers for download.

    Only the MongoDB observer gets them: the run folder already holds these files. A server
    lost since the run started costs one warning line, not the run.
    """
    from sacred.observers import MongoObserver

    for observer in run.observers:
        if not isinstance(observer, MongoObserver):
            continue
        for name, path in files.items():
            if not Path(path).is_file():
                continue
            try:
                observer.artifact_event(name, str(path))
            except Exception as e:  # pymongo's errors and GridFS's alike
                logger.warning("artifact %s not stored in MongoDB (%s)", name, e)
                return
