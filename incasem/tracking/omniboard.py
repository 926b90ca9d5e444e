"""Omniboard, the Sacred dashboard (npm package ``omniboard``), for runs recorded in MongoDB.

Runs started with ``--mongodb URL`` are in that database (Sacred's ``MongoObserver``);
`start_omniboard` serves Omniboard for it on 127.0.0.1 and `add_metric_columns` makes its run
list show our metrics as columns: the last training loss and the best validation F1, IoU and
threshold. Omniboard is a node program: `find_omniboard` looks for it in ``INCASEM_OMNIBOARD``,
on ``PATH``, then where ``.ci/services/omniboard.sh`` installs it
(``~/.cache/incasem-services/omniboard``, or under ``INCASEM_SERVICES_DIR``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from incasem.errors import IncasemError
from incasem.tracking.observers import SERVER_TIMEOUT_MS, mongodb_unreachable, split_mongodb_url

#: Omniboard's metric columns for our runs: (column, Sacred metric, how runs are summarised).
METRIC_COLUMNS = (
    ("loss", "loss", "last"),
    ("F1", "validation/best_f1", "max"),
    ("IoU", "validation/iou", "max"),
    ("threshold", "validation/best_threshold", "last"),
)
_LOCALHOST = Path(__file__).with_name("omniboard_localhost.js")
_INSTALL_HINT = "install it with .ci/services/omniboard.sh (npm install omniboard)"


def find_omniboard() -> Path:
    """The ``omniboard`` executable; raises `IncasemError` saying how to install it."""
    services = Path(
        os.environ.get("INCASEM_SERVICES_DIR", Path.home() / ".cache" / "incasem-services")
    )
    for candidate in (
        os.environ.get("INCASEM_OMNIBOARD"),
        shutil.which("omniboard"),
        services / "omniboard" / "node_modules" / ".bin" / "omniboard",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise IncasemError(f"omniboard not found (set INCASEM_OMNIBOARD, or {_INSTALL_HINT})")


def add_metric_columns(mongodb: str) -> None:
    """Add `METRIC_COLUMNS` to Omniboard's settings in database ``mongodb`` (kept if present)."""
    import pymongo

    url, database = split_mongodb_url(mongodb)
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS)
    try:
        columns = client[database]["omniboard.metric.columns"]
        for name, metric, extrema in METRIC_COLUMNS:
            columns.update_one(
                {"name": name},
                {"$setOnInsert": {"name": name, "metric_name": metric, "extrema": extrema}},
                upsert=True,
            )
    finally:
        client.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_omniboard(
    mongodb: str, port: int = 9000, log: str | os.PathLike | None = None, timeout: float = 120
) -> subprocess.Popen:
    """Start Omniboard on ``http://127.0.0.1:PORT`` for database ``mongodb``
    (``mongodb://HOST:PORT/DATABASE``) and wait until it answers; returns its process.

    Its output goes to ``log`` (default: discarded). Raises `IncasemError` when the database
    does not answer, the port is taken, or Omniboard does not start within ``timeout`` seconds.
    """
    url, database = split_mongodb_url(mongodb)
    reason = mongodb_unreachable(url)
    if reason is not None:
        raise IncasemError(f"--mongodb {mongodb}: not reached ({reason})")
    if not _port_free(port):
        raise IncasemError(f"--port {port}: 127.0.0.1:{port} is taken; choose another port")
    executable = find_omniboard()
    add_metric_columns(mongodb)
    env = {
        **os.environ,
        "PORT": str(port),
        "NODE_OPTIONS": f"--require {_LOCALHOST}",
    }
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    process = subprocess.Popen(
        [str(executable), "--mu", f"{url}/{database}"],
        env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while _port_free(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise IncasemError(
                f"omniboard did not start on 127.0.0.1:{port}" + (f"; see {log}" if log else "")
            )
        time.sleep(0.2)
    return process
