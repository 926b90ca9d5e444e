"""Runs recorded on a real MongoDB-protocol server (``.ci/services/mongodb.sh``) through Sacred's
own ``MongoObserver``, browsed in Omniboard (``incasem board``) with headless Chromium; and a
stopped server fails no run: training and prediction finish, keep their file record and say in
one line that the database was not reached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from incasem.tracking.omniboard import find_omniboard
from incasem.viz.neuroglancer import find_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: Where the Omniboard screenshot is kept (CI keeps this folder as the tests' artifacts).
ARTIFACTS = Path(os.environ.get("INCASEM_TEST_ARTIFACTS", REPO / "test-artifacts"))


def _incasem(folder: Path, *args: str, script: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / script)] if script else [
        sys.executable, "-m", "incasem.cli.main"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*command, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )


def _train_and_predict(folder: Path, write_cubes, mongodb: str) -> tuple:
    """Train 2 iterations (validated, checkpointed) on dark cubes, then predict with the run."""
    entry = write_cubes((140, 140, 140), count=12, edge=20, corners=(10, 110))
    train, validation = folder / "train.json", folder / "validation.json"
    train.write_text(
        json.dumps({"train": {**entry, "offset": [0, 0, 0], "shape": [100, 140, 140]}})
    )
    validation.write_text(
        json.dumps({"val": {**entry, "offset": [100, 0, 0], "shape": [40, 140, 140]}})
    )
    trained = _incasem(
        folder, "--name", "cubes_on_server", "--mongodb", mongodb, "with",
        f"training.data={train}", f"validation.data={validation}", "directories.runs=runs",
        "directories.data=.", "model.num_fmaps=2", "training.input_size_voxels=[108,108,108]",
        "training.output_size_voxels=[14,14,14]", "validation.input_size_voxels=[140,236,236]",
        "training.iterations=2", "training.save_every=2", "validation.validate_every=2",
        "sacred.log_every=1", script="train.py",
    )  # fmt: skip
    predicted = _incasem(
        folder, "predict", "--run_id", "1", "--runs_dir", "runs", "--input", "cubes.zarr",
        "--roi", "0", "0", "0", "40", "40", "40", "--device", "cpu", "--no-progress",
        "--mongodb", mongodb,
    )  # fmt: skip
    return trained, predicted


def _omniboard_page(url: str, expected: list[str], screenshot: Path) -> str:
    """The text of Omniboard's run list in headless Chromium once it shows ``expected``."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.environ.setdefault("SE_OFFLINE", "true")  # the local chromedriver, no downloads
    options = webdriver.ChromeOptions()
    options.binary_location = find_chromium()
    for argument in ("--headless=new", "--no-sandbox", "--window-size=3000,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(url)
        body = lambda: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        try:
            WebDriverWait(driver, 120).until(lambda _: all(text in body() for text in expected))
        except TimeoutException:
            missing = [text for text in expected if text not in body()]
            raise AssertionError(f"Omniboard shows no {missing}: {body()[-2000:]}") from None
        finally:
            driver.save_screenshot(str(screenshot))
        return body()
    finally:
        driver.quit()


def test_runs_on_the_server_and_in_omniboard(tmp_path, write_cubes, mongodb_url):
    if find_chromium() is None or shutil.which("chromedriver") is None:
        pytest.skip("the browser check needs chromium and chromedriver (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    find_omniboard()  # installed by .ci/services/omniboard.sh
    trained, predicted = _train_and_predict(tmp_path, write_cubes, mongodb_url)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "not reached" not in trained.stderr + predicted.stderr

    server, database = mongodb_url.rsplit("/", 1)
    db = pymongo.MongoClient(server)[database]
    runs = {run["experiment"]["name"]: run for run in db.runs.find()}
    training, prediction = runs["cubes_on_server"], runs["incasem_prediction"]
    assert training["status"] == prediction["status"] == "COMPLETED"
    assert training["config"]["training"]["iterations"] == 2
    metrics = {m["name"]: m for m in db.metrics.find({"run_id": training["_id"]})}
    on_disk = json.loads((tmp_path / "runs" / str(training["_id"]) / "metrics.json").read_text())
    for name in ("loss", "validation/f1", "validation/iou", "validation/best_threshold"):
        assert metrics[name]["values"] == on_disk[name]["values"]  # the same numbers as the file
    artifacts = {a["name"] for a in training["artifacts"]}
    assert {"training_curves.png", "best.json", "model_checkpoint_2.pt"} <= artifacts
    best = max(on_disk["validation/best_f1"]["values"])
    listed = _incasem(tmp_path, "runs", "list", "--mongodb", mongodb_url, "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[str(training["_id"])]["name"] == "cubes_on_server"
    assert rows[str(training["_id"])]["iterations"] == 2
    assert rows[f"p{prediction['_id']}"]["kind"] == "prediction"

    port = _free_port()
    board = subprocess.Popen(
        [sys.executable, "-m", "incasem.cli.main", "board", "--mongodb", mongodb_url,
         "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert board.stdout.readline().startswith(f"Omniboard: http://127.0.0.1:{port}")
        loss = on_disk["loss"]["values"][-1]
        page = _omniboard_page(
            f"http://127.0.0.1:{port}",
            ["cubes_on_server", "incasem_prediction", "COMPLETED", "F1"],
            ARTIFACTS / "omniboard.png",
        )
    finally:
        board.terminate()
        board.wait(timeout=60)
    assert _port_closed(port), "a terminated board left Omniboard serving"
    row = page[page.index("cubes_on_server") :]
    assert f"{best:.4g}"[:4] in row and f"{loss:.4g}"[:4] in row  # its metrics, as columns
    for column in ("Loss", "F1", "IoU", "Threshold"):
        assert column in page or column.upper() in page


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stopped_server_fails_no_run(tmp_path, write_cubes, unreachable_mongodb):
    trained, predicted = _train_and_predict(tmp_path, write_cubes, unreachable_mongodb)
    for result in (trained, predicted):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        (line,) = [line for line in result.stderr.splitlines() if "MongoDB" in line]
        assert f"MongoDB {unreachable_mongodb} not reached" in line
        assert "Connection refused" in line and "recorded in" in line
    for run in (tmp_path / "runs" / "1", tmp_path / "runs" / "predictions" / "1"):
        assert json.loads((run / "run.json").read_text())["status"] == "COMPLETED"
    assert not (tmp_path / "runs" / "mongodb_failures").exists()


def _port_closed(port: int, seconds: float = 20) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:``port`` within ``seconds``."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.2)
    return False
