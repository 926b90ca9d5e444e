"""Config layers as Sacred combines them: defaults < config files < ``key=value`` updates.

``train.py`` and ``predict.py`` resolve the configuration themselves before Sacred starts a run,
so that a bad request fails before anything is recorded and ``auto`` values can be planned.
Both must merge exactly as Sacred will: nested mappings key by key, anything else replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError


def merge_into(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``base`` in place (nested mappings key by key); returns ``base``."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_into(base[key], value)
        else:
            base[key] = value
    return base


#: Config file suffixes we read. Sacred would also load ``.pickle`` files, which runs whatever
#: code the file names: such files are refused before Sacred sees them.
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def load_config_file(name: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (safe loader) or JSON config file.

    Raises `IncasemError` naming the file when it is missing, has another suffix (a pickle),
    does not parse, or does not hold a mapping of keys.
    """
    import json

    import yaml

    path = Path(name)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise IncasemError(
            f"config file {name}: use a .yaml, .yml or .json file (other formats such as pickles "
            "are refused: loading them can run code)"
        )
    if not path.is_file():
        raise IncasemError(f"config file {name}: not found")
    try:
        text = path.read_text()
        loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        reason = " ".join(str(e).split())
        raise IncasemError(f"config file {name}: cannot be read ({reason})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise IncasemError(f"config file {name}: expected a mapping of keys")
    return dict(loaded)


def check_config_files(files: Sequence[str | Path]) -> None:
    """Raise `IncasemError` for the first config file `load_config_file` refuses."""
    for name in files:
        load_config_file(name)


def resolve_layers(
    defaults: dict[str, Any], files: Sequence[str | Path], updates: Mapping[str, Any]
) -> dict[str, Any]:
    """``defaults``, then each config file (YAML or JSON, in order), then ``updates``; merged
    into ``defaults`` in place. Raises `IncasemError` as `load_config_file` does."""
    for name in files:
        merge_into(defaults, load_config_file(name))
    return merge_into(defaults, updates)
