"""The one exception type users see.

Every check of user input (files, datasets, keys, ROIs, sizes) raises `IncasemError` with a single
line that names the culprit. The command line prints that line and exits non-zero instead of
showing a traceback from deep inside gunpowder, zarr or torch; library callers can catch it.
"""


class IncasemError(Exception):
    """A problem with user input, stated in one line that names the file, key or ROI at fault."""
