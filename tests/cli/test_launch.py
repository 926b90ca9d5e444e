"""Worker command templates for every blockwise command: ``incasem equalize`` and ``incasem
instances`` run their workers through a template (as a cluster's srun would) and write what local
workers write, even from a container path full of shell code; templates that would run the worker
as shell code are refused; a worker rebuilds its block function from JSON and imports nothing from
outside incasem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from incasem.cli.main import main
from incasem.errors import IncasemError
from incasem.io import create_array, open_array
from incasem.launch import import_named


def _run(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


#: A folder name a user may meet on a shared disk: quotes, spaces, command substitution, a
#: command separator and non-ASCII, each of which creates a marker file if run as shell code.
HOSTILE = 'it\'s a "lab" $(touch subst) `touch tick`; touch semi && touch amp | cellule à Zürich'
MARKERS = ("subst", "tick", "semi", "amp")


def test_equalize_and_instances_through_a_template_equal_local_workers(
    tmp_path: Path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where `touch X` would create X
    rng = np.random.default_rng(0)
    container = tmp_path / HOSTILE / "cell $(touch subst).zarr"
    raw = create_array(container, "raw", (48, 64, 64), (10, 5, 5), chunks=(16, 32, 32))
    raw[raw.roi] = rng.integers(0, 255, (48, 64, 64), dtype=np.uint8)
    labels = np.zeros((48, 64, 64), np.uint8)
    labels[10:40, 20:50, 20:50] = 1  # crosses block faces
    labels[2:4, 2:4, 2:4] = 1
    array = create_array(container, "mito", labels.shape, (10, 5, 5), chunks=(16, 32, 32))
    array[array.roi] = labels

    marker = tmp_path / "launched"
    templates = {
        "local": None,
        "shell": f"bash -c 'echo worker >> {marker}; exec \"$@\"' bash {{command}}",
        "env": "env INCASEM_TEST=1 {command}",
    }
    for name, template in templates.items():
        launch = [] if template is None else ["--worker-command", template]
        _run(capsys, "equalize", container, "-d", "raw", "--kernel-size", 16, "--workers", 2,
             "--out-dataset", f"eq_{name}", "--no-progress", *launch)  # fmt: skip
        out = _run(capsys, "instances", container, "-d", "mito", "--out-dataset", f"obj_{name}",
                   "--block-size", 16, "--workers", 2, "--no-progress", *launch)  # fmt: skip
        assert "2 objects" in out
    for prefix in ("eq", "obj"):
        local = open_array(container, f"{prefix}_local")
        for name in ("shell", "env"):
            through = open_array(container, f"{prefix}_{name}")
            np.testing.assert_array_equal(through[through.roi], local[local.roi])
    assert len(marker.read_text().splitlines()) >= 2  # the workers did start through it
    assert not list(container.parent.glob("*.logs"))  # the logs are gone
    assert not [m for m in MARKERS if (tmp_path / m).exists() or (container.parent / m).exists()]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("bash -c '{command}'", "hands the worker to a shell as its script (-c {command})"),
        ("sh -lc {command}", "hands the worker to a shell as its script (-lc {command})"),
        ("bash -c 'echo hi; {command}'", "must contain '{command}' once, as a word of its own"),
        ("srun {command} {command}", "must contain '{command}' once, as a word of its own"),
        ("srun 'unclosed {command}", "cannot be split into words: No closing quotation"),
    ],
)
def test_templates_that_would_run_a_path_as_shell_code_are_refused(
    tmp_path: Path, capsys, monkeypatch, template: str, message: str
):
    """The README's former example ``bash -c '{command}'`` ran ``$(touch subst)`` from the
    container path as code on 6a96a73; it is now refused in one line before any worker starts."""
    monkeypatch.chdir(tmp_path)
    container = tmp_path / "cell $(touch subst); touch semi.zarr"
    raw = create_array(container, "raw", (16, 16, 16), (10, 10, 10))
    raw[raw.roi] = np.random.default_rng(0).integers(0, 255, (16, 16, 16), dtype=np.uint8)
    argv = ["equalize", str(container), "-d", "raw", "--kernel-size", "8", "--workers", "1",
            "--no-progress", "--worker-command", template]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--worker-command {template!r} " in err and message in err
    assert len(err.strip().splitlines()) == 1
    assert not [m for m in ("subst", "semi") if (tmp_path / m).exists()]


def test_a_bad_template_and_a_foreign_block_function_are_refused(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    container = tmp_path / "c.zarr"
    raw = create_array(container, "raw", (16, 16, 16), (10, 10, 10))
    raw[raw.roi] = rng.integers(0, 255, (16, 16, 16), dtype=np.uint8)
    assert main(["equalize", str(container), "-d", "raw", "--worker-command", "srun"]) == 2
    assert "--worker-command 'srun' must contain '{command}'" in capsys.readouterr().err

    assert import_named("incasem.blockwise:BlockFailures").__name__ == "BlockFailures"
    with pytest.raises(IncasemError, match="workers import block functions only from the pac"):
        import_named("os:system")
