"""Property-based tests of the input boundary: every generated input either works or is refused
with one line (`IncasemError`; on the command line one ``error:`` line and exit code 2), and no
traceback escapes.

Hypothesis runs with a fixed seed (``derandomize``) and a bounded number of examples per
property, so the suite is reproducible and takes well under a minute.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, settings

from incasem.errors import IncasemError

settings.register_profile(
    "incasem-properties",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
#: The settings every property uses (see the module docstring).
BOUNDED = settings.get_profile("incasem-properties")


@contextlib.contextmanager
def folder() -> Iterator[Path]:
    """A fresh temporary folder per example (pytest's ``tmp_path`` is one per test)."""
    with tempfile.TemporaryDirectory(prefix="incasem-property-") as path:
        yield Path(path)


def works_or_one_line(function, *args, **kwargs):
    """Call ``function``; return its result, or None when it refused with a one-line
    `IncasemError`. Any other exception, or a multi-line message, fails the property."""
    try:
        return function(*args, **kwargs)
    except IncasemError as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        return None
