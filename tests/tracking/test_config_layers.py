"""Config layers for train.py and predict.py: merged as Sacred merges them, and config files
that could run code (pickles) refused before anything loads them."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from incasem.errors import IncasemError
from incasem.tracking.config_layers import load_config_file, merge_into, resolve_layers


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_layers_merge_nested_keys_in_order(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("training:\n  iterations: 5\n  save_every: 2\n")
    (tmp_path / "b.json").write_text('{"training": {"save_every": 3}, "model": {"fmaps": 8}}')
    defaults = {"training": {"iterations": 1, "save_every": 1, "lr": 0.1}, "model": {}}
    config = resolve_layers(
        defaults, [tmp_path / "a.yaml", tmp_path / "b.json"], {"training": {"lr": 0.2}}
    )
    assert config == {
        "training": {"iterations": 5, "save_every": 3, "lr": 0.2},
        "model": {"fmaps": 8},
    }
    assert merge_into({"a": {"b": 1}}, {"a": 2}) == {"a": 2}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.txt", "a: 1", r"c\.txt: use a \.yaml, \.yml or \.json file"),
        ("missing.yaml", None, r"missing\.yaml: not found"),
        ("list.yaml", "- 1\n- 2\n", r"list\.yaml: expected a mapping of keys"),
        ("bad.json", "{oops", r"bad\.json: cannot be read"),
        ("tag.yaml", "a: !!python/object/apply:os.system ['true']", r"tag\.yaml: cannot be read"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path: Path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(IncasemError, match=message) as error:
        load_config_file(tmp_path / name)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_a_pickled_config_is_never_loaded(tmp_path: Path, repo_root: Path, script: str):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "config.pickle"
    evil.write_bytes(pickle.dumps({"a": _RunsCode(marker)}))
    done = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / script), "with", str(evil)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0 and not marker.exists()
    assert "use a .yaml, .yml or .json file" in done.stderr
    assert "Traceback" not in done.stderr
