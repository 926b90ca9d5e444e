"""Fixtures shared by all tests: small real zarr containers on disk, a synthetic cell with its
training config, and the shared data folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from incasem.io import create_array
from incasem.phantom import write_cell
from incasem.training.config import TrainingConfig, parse_config

REPO = Path(__file__).resolve().parents[1]
# Workers import block functions by name from incasem only; the tests' own block functions
# (`tests.prepare.test_blockwise_runner`) are allowed through the explicit list.
os.environ["INCASEM_WORKER_PACKAGES"] = "tests"
SHARED_DATA = Path(os.environ.get("INCASEM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def repo_root() -> Path:
    """The repository checkout (configs/, scripts/)."""
    return REPO


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real FIB-SEM volumes); tests using it skip only if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set INCASEM_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def small_container(tmp_path: Path) -> Path:
    """A 40x50x60 voxel container at 10x5x5 nm, offset (100, 50, 0) nm, with raw, a label with
    class voxels in a cube, a mask and a metric mask."""
    path = tmp_path / "cell.zarr"
    rng = np.random.default_rng(0)
    shape, voxel_size, offset = (40, 50, 60), (10, 5, 5), (100, 50, 0)
    raw = create_array(path, "volumes/raw", shape, voxel_size, offset)
    raw[raw.roi] = rng.integers(0, 255, shape, dtype=np.uint8)
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 10:30, 10:40] = 1
    for name, data in (
        ("volumes/labels/mito", labels),
        ("volumes/mask", np.ones(shape, np.uint8)),
        ("volumes/metric_masks/mito", np.ones(shape, np.uint8)),
    ):
        array = create_array(path, name, shape, voxel_size, offset)
        array[array.roi] = data
    return path


@pytest.fixture
def phantom_training(tmp_path: Path) -> Callable[..., TrainingConfig]:
    """A factory: writes a synthetic cell of ``cell_shape`` voxels (5 nm) and a data config with
    one annotated block (``name``, ``offset`` and ``shape`` in voxels, mitochondria as class 1),
    and returns the training config for it, with ``sections`` merged in (e.g.
    ``training={...}, model={...}``)."""

    def make(cell_shape, offset, shape, name="block", **sections) -> TrainingConfig:
        write_cell(tmp_path / "cell.zarr", shape=cell_shape)
        entry = {
            "file": "cell.zarr",
            "offset": list(offset),
            "shape": list(shape),
            "voxel_size": [5, 5, 5],
            "raw": "volumes/raw",
            "labels": {"volumes/labels/mito": 1},
        }
        data = tmp_path / "data.json"
        data.write_text(json.dumps({name: entry}))
        training = {"data": str(data), **sections.pop("training", {})}
        return parse_config(
            {
                "directories": {"data": str(tmp_path), "runs": str(tmp_path / "runs")},
                "training": training,
                **sections,
            }
        )

    return make


@pytest.fixture
def write_cubes(tmp_path: Path) -> Callable[..., dict]:
    """A factory: writes ``tmp_path/cubes.zarr``, a volume of ``shape`` voxels at 5 nm, noise
    around 160 with ``count`` dark cubes of ``edge`` voxels labelled as class 1 (corners drawn in
    ``corners`` = [low, high)), and returns its data-config entry without offset and shape."""

    def make(shape, count, edge, corners) -> dict:
        rng = np.random.default_rng(0)
        labels = np.zeros(shape, np.uint8)
        for z, y, x in rng.integers(*corners, size=(count, 3)):
            labels[z : z + edge, y : y + edge, x : x + edge] = 1
        raw = rng.normal(160, 20, shape)
        raw[labels > 0] -= 80
        container = tmp_path / "cubes.zarr"
        raw_array = create_array(container, "volumes/raw", shape, (5, 5, 5))
        raw_array[raw_array.roi] = np.clip(raw, 0, 255).astype(np.uint8)
        labels_array = create_array(container, "volumes/labels/cubes", shape, (5, 5, 5))
        labels_array[labels_array.roi] = labels
        return {
            "file": "cubes.zarr",
            "voxel_size": [5, 5, 5],
            "raw": "volumes/raw",
            "labels": {"volumes/labels/cubes": 1},
        }

    return make


# --- Real services (MongoDB-protocol server, Omniboard, SLURM), started by .ci/services/ ------
# A test that needs one skips, saying how to start it, where it is missing; under CI (CI=true)
# a missing service fails the test instead, so CI cannot pass by skipping them.

SERVICES = Path(os.environ.get("INCASEM_SERVICES_DIR", Path.home() / ".cache/incasem-services"))


def service_missing(message: str) -> None:
    """Skip the test (fail it under CI=true) because a service it needs is not running."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}: CI starts it with .ci/services/ before the tests")
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The name of the node of a running SLURM cluster (``.ci/services/slurm.sh``)."""
    import shutil
    import subprocess

    if shutil.which("sinfo") is None or shutil.which("srun") is None:
        service_missing("no SLURM client (srun, sinfo); start one with .ci/services/slurm.sh")
    state = subprocess.run(["sinfo", "-h", "-o", "%N %T"], capture_output=True, text=True)
    words = state.stdout.split()
    if state.returncode != 0 or len(words) < 2 or words[1] not in ("idle", "mixed", "allocated"):
        service_missing(f"no SLURM node is up ({state.stdout.strip() or state.stderr.strip()}); "
                        "start one with .ci/services/slurm.sh")  # fmt: skip
    return words[0]


@pytest.fixture(scope="session")
def mongodb_server() -> str:
    """``mongodb://127.0.0.1:PORT`` of a running MongoDB-protocol server: ``INCASEM_TEST_MONGODB``
    or the one ``.ci/services/mongodb.sh`` started."""
    import pymongo
    import pymongo.errors

    url_file = SERVICES / "mongodb.url"
    url = os.environ.get("INCASEM_TEST_MONGODB") or (
        url_file.read_text().strip() if url_file.is_file() else None
    )
    if not url:
        service_missing("no MongoDB server (start one with .ci/services/mongodb.sh)")
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as e:
        service_missing(f"MongoDB server {url} does not answer ({type(e).__name__})")
    finally:
        client.close()
    return url


@pytest.fixture
def mongodb_url(mongodb_server: str) -> Iterator[str]:
    """A fresh database on the test server (``mongodb://HOST:PORT/DB``), dropped afterwards."""
    import uuid

    import pymongo

    database = f"incasem_test_{uuid.uuid4().hex[:8]}"
    yield f"{mongodb_server}/{database}"
    pymongo.MongoClient(mongodb_server, serverSelectionTimeoutMS=3000).drop_database(database)


@pytest.fixture
def unreachable_mongodb() -> str:
    """``mongodb://127.0.0.1:PORT/incasem`` where no server listens (a stopped server)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"mongodb://127.0.0.1:{port}/incasem"
