"""The one exception type users see.

Every check of user input (files, datasets, keys, ROIs, sizes) raises `IncasemError` with a single
line that names the culprit. The command line prints that line and exits non-zero instead of
showing a traceback from deep inside gunpowder, zarr or torch; library callers can catch it.
"""


class IncasemError(Exception):
    """A problem with user input, stated in one line that names the file, key or ROI at fault."""


class Interrupted(KeyboardInterrupt):
    """The user stopped a command (Ctrl-C); the one line says what was kept and how to go on.

    A KeyboardInterrupt, so that Sacred records the run as INTERRUPTED; the command line prints
    the line and exits with 130 (the shell's code for SIGINT).
    """


#: Exit code of a command stopped by Ctrl-C (the shell's 128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130


def interruption_line(error: KeyboardInterrupt) -> str:
    """``interrupted`` plus, for an `Interrupted`, what was kept and how to go on."""
    return f"interrupted; {error}" if isinstance(error, Interrupted) else "interrupted"
