"""A prediction's configuration from its sources: defaults < config files < ``with`` updates <
flags (or the library's keyword settings).

The command line (`incasem.cli.predict`) parses and prints; what its words mean is worked out
here: every value given is put under its Sacred key (`PredictionSettings` declares the keys),
old key names are read with a deprecation line, and the whole configuration is resolved before
Sacred records anything, so that a bad request fails first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from incasem.errors import IncasemError
from incasem.predict.settings import PredictionSettings, default_config
from incasem.settings import deprecated

logger = logging.getLogger("incasem.predict")


def config_updates(
    values: Mapping[str, Any], updates: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """Sacred's config updates and config files: the ``with`` clause ``updates`` (``with`` may
    be left out), then every settings field in ``values`` (parsed flags: only those given) by
    its Sacred key; other names in ``values`` are not settings and are left out."""
    from sacred.utils import set_by_dotted_path

    from incasem.tracking.experiment import with_clause

    updates_by_key, named_configs = with_clause(list(updates), required=False)
    for name, value in values.items():
        key = PredictionSettings.config_key(name)
        if key is not None:
            set_by_dotted_path(updates_by_key, key, value)
    return updates_by_key, named_configs


def keyed_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (field names, or their old names with a deprecation line) by Sacred key.

    Raises `IncasemError` naming an unknown setting and the known ones.
    """
    keyed = {}
    for given, value in settings.items():
        name = PredictionSettings.field_of(given)
        key = PredictionSettings.config_key(name) if name else None
        if key is None:
            known = ", ".join(
                sorted(
                    f for f in PredictionSettings.model_fields if PredictionSettings.config_key(f)
                )
            )
            raise IncasemError(f"predict: unknown setting {given!r}; settings are {known}")
        if given != name:
            deprecated(repr(given), repr(name))
        keyed[key] = value
    return keyed


def resolve_config(config_updates: dict[str, Any], named_configs: Sequence[str]) -> dict[str, Any]:
    """The configuration Sacred will run with: defaults, then config files, then updates.

    Computed up front so that a bad request fails before Sacred records a run; keys prediction
    does not use are named in one warning (old key names are used).
    """
    from incasem.tracking import experiment

    config = experiment.resolve_config(default_config(), config_updates, named_configs)
    known = _dotted_keys(default_config()) | {
        old for name in PredictionSettings.model_fields
        for old in PredictionSettings.old_config_keys(name)
    }  # fmt: skip
    unknown = sorted(_dotted_keys(config) - known)
    if unknown:
        logger.warning("configuration keys not used by prediction: %s", ", ".join(unknown))
    return config


def _dotted_keys(config: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in config.items():
        if isinstance(value, dict) and value:
            keys |= _dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys
