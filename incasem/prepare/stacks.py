"""Image stacks on disk (2D TIFF or PNG slices, multi-page TIFFs) as lazily readable volumes.

FIB-SEM microscopes write one 2D image per section, and annotation tools export the same way
(VAST writes PNG slices), so this is how most data arrives. Three design decisions:

* **Order by the number in the file name, not by the name.** The original sorted paths as
  strings, which scrambles unpadded names (``s_10.tif`` before ``s_2.tif``). Here a regular
  expression captures the section number and slices are ordered by its integer value; numbers
  must be consecutive (a gap is a missing section, and silently closing it would shift every
  later section in z) and unique.
* **Check every header before reading any pixels.** Slice sizes and dtypes come from the file
  headers (cheap), so a stack with one odd slice is refused with the name of that slice before
  anything is written.
* **Read regions, not slices.** A TIFF is read through tifffile's zarr view, which decodes only
  the strips or tiles that overlap the requested rows, so a block of a few rows of many slices
  needs memory for that block only. PNG (no random access) decodes a whole slice at a time, which
  still bounds memory by one slice plus one block.

Axis order of every array returned here is z, y, x; sizes are in voxels.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from incasem.errors import IncasemError

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png")

#: The section number is the last group of digits before the extension: ``s_2.tif`` -> 2,
#: ``section_0010.png`` -> 10.
DEFAULT_SLICE_REGEX = r"(\d+)\.(?:tiff?|png)$"

#: How RGB(A) slices become one value per voxel: ``gray`` is luminance in the slice's dtype (for
#: gray images saved as RGB), ``id`` is VAST's segment id encoding ``R * 65536 + G * 256 + B``.
RGB_MODES = ("gray", "id")


@dataclass(frozen=True)
class SliceStack:
    """A z-stack of 2D images, one ``(file, page)`` per section, readable by region.

    Attributes:
        slices: ``(path, page index)`` of each section, in z order.
        slice_shape: (y, x) in voxels, identical for all slices.
        file_dtype: dtype stored in the files.
        channels: 0 for gray slices, 3 or 4 for RGB(A).
        rgb: how RGB(A) slices are reduced to one channel (one of `RGB_MODES`), if they are.
        name: the directory or file it came from, for messages.
    """

    slices: tuple[tuple[str, int], ...]
    slice_shape: tuple[int, int]
    file_dtype: str
    channels: int = 0
    rgb: str | None = None
    name: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Volume shape in voxels (z, y, x)."""
        return (len(self.slices), *self.slice_shape)

    @property
    def dtype(self) -> np.dtype:
        """dtype of the arrays `read` returns."""
        if self.channels and self.rgb == "id":
            return np.dtype(np.uint32)
        return np.dtype(self.file_dtype)

    def read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Voxels ``[z, y, x]`` (slices with non-negative bounds, step 1) as a (z, y, x) array."""
        out = np.empty((z.stop - z.start, y.stop - y.start, x.stop - x.start), dtype=self.dtype)
        for i, (path, page) in enumerate(self.slices[z]):
            region = _read_region(path, page, y, x)
            out[i] = _reduce_rgb(region, self.rgb, path) if self.channels else region
        return out


def _read_region(path: str, page: int, y: slice, x: slice) -> np.ndarray:
    if path.lower().endswith(TIFF_SUFFIXES):
        import tifffile
        import zarr

        try:
            with tifffile.TiffFile(path) as tif:
                store = tif.aszarr(key=page)
                try:
                    return zarr.open(store, mode="r")[y, x]
                finally:
                    store.close()
        except (ValueError, KeyError, OSError, tifffile.TiffFileError) as e:
            hint = " (install 'imagecodecs' to read this compression)" if "codec" in str(e) else ""
            raise IncasemError(f"{path}: cannot read page {page}: {e}{hint}") from None
    import imageio.v3 as iio

    try:
        return iio.imread(path)[y, x]
    except (ValueError, OSError) as e:
        raise IncasemError(f"{path}: cannot read image: {e}") from None


def _reduce_rgb(region: np.ndarray, mode: str | None, path: str) -> np.ndarray:
    rgb = region[..., :3]
    if mode == "id":
        if rgb.dtype != np.uint8:
            raise IncasemError(f"{path}: VAST id encoding needs 8-bit RGB, found {rgb.dtype}")
        rgb = rgb.astype(np.uint32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    from skimage.color import rgb2gray

    gray = rgb2gray(rgb)
    if np.issubdtype(region.dtype, np.integer):
        return np.round(gray * np.iinfo(region.dtype).max).astype(region.dtype)
    return gray.astype(region.dtype)


@contextmanager
def _damaged_tiff(path: str | Path) -> Iterator[None]:
    """Turn what tifffile only logs into an error: a truncated or corrupt file whose pages it
    cannot find (it logs "invalid page offset" and reads fewer pages, so a conversion would
    silently drop them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(handler)
    propagate, tiff_logger.propagate = tiff_logger.propagate, False
    try:
        yield
    finally:
        tiff_logger.removeHandler(handler)
        tiff_logger.propagate = propagate
    if records:
        raise IncasemError(
            f"{path}: damaged TIFF ({records[0].getMessage().strip()}): the file is truncated or "
            "corrupt, so some of its pages cannot be read; copy it again"
        )


def _header(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """Number of pages, shape of the first page and its dtype, from the file header only."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with _damaged_tiff(path), tifffile.TiffFile(path) as tif:
                first = tif.pages.first
                return len(tif.pages), tuple(first.shape), np.dtype(first.dtype)
        import imageio.v3 as iio

        props = iio.improps(path)
        return 1, tuple(props.shape), np.dtype(props.dtype)
    except IncasemError:
        raise
    except Exception as e:  # any decoder error is a problem with this one file
        raise IncasemError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _slice_shape(shape: tuple[int, ...], where: str, rgb: str | None) -> tuple[int, int, int]:
    """(y, x, channels) of one slice; channels 0 for gray."""
    if len(shape) == 2:
        return shape[0], shape[1], 0
    if len(shape) == 3 and shape[2] in (3, 4):
        if rgb is None:
            raise IncasemError(
                f"{where}: slices are RGB(A) {list(shape)}; pass --rgb gray (gray images saved "
                "as RGB) or --rgb id (VAST segment ids)"
            )
        return shape[0], shape[1], shape[2]
    raise IncasemError(f"{where}: expected 2D slices, found shape {list(shape)}")


def _section_numbers(
    directory: Path, pattern: re.Pattern[str]
) -> tuple[list[tuple[int, Path]], int]:
    numbered: list[tuple[int, Path]] = []
    ignored = 0
    for entry in os.scandir(directory):
        if not entry.is_file():
            continue
        match = pattern.search(entry.name)
        if match is None:
            ignored += 1
            continue
        group = match.group("z") if "z" in pattern.groupindex else match.group(1)
        numbered.append((int(group), Path(entry.path)))
    return numbered, ignored


def _check_consecutive(numbered: list[tuple[int, Path]], directory: Path) -> None:
    for (a, path_a), (b, path_b) in zip(numbered, numbered[1:], strict=False):
        if a == b:
            raise IncasemError(
                f"{directory}: {path_a.name} and {path_b.name} both have section number {a}"
            )
        if b != a + 1:
            missing = f"{a + 1}" if b == a + 2 else f"{a + 1} to {b - 1}"
            raise IncasemError(
                f"{directory}: section numbers {missing} are missing between {path_a.name} and "
                f"{path_b.name}; every section must be present"
            )


def _compile(regex: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(regex, re.IGNORECASE)
    except re.error as e:
        raise IncasemError(f"--regex {regex!r} is not a valid regular expression: {e}") from None
    if pattern.groups < 1:
        raise IncasemError(
            f"--regex {regex!r} needs a group capturing the section number, e.g. 'slice_(\\d+)'"
        )
    return pattern


def _stack_from_directory(directory: Path, regex: str, rgb: str | None) -> SliceStack:
    pattern = _compile(regex)
    numbered, ignored = _section_numbers(directory, pattern)
    if not numbered:
        raise IncasemError(
            f"{directory}: no files match --regex {regex!r} ({ignored} other files); the regex "
            "must capture the section number, e.g. 'slice_(\\d+)\\.tif$'"
        )
    if ignored:
        logger.info("%s: ignored %d files that do not match %r", directory, ignored, regex)
    numbered.sort(key=lambda item: item[0])
    _check_consecutive(numbered, directory)

    first_path = numbered[0][1]
    pages, first_shape, first_dtype = _header(first_path)
    height, width, channels = _slice_shape(first_shape, str(first_path), rgb)
    for _, path in numbered:
        pages, shape, dtype = _header(path)
        if pages != 1:
            raise IncasemError(
                f"{path}: has {pages} pages; a slice directory must hold one 2D image per file "
                "(convert a multi-page TIFF by passing the file itself)"
            )
        if shape != first_shape or dtype != first_dtype:
            raise IncasemError(
                f"{path.name} is {list(shape)} {dtype} but {first_path.name} is "
                f"{list(first_shape)} {first_dtype}; all slices must have the same size and dtype"
            )
    return SliceStack(
        slices=tuple((str(path), 0) for _, path in numbered),
        slice_shape=(height, width),
        file_dtype=first_dtype.str,
        channels=channels,
        rgb=rgb if channels else None,
        name=str(directory),
    )


def _stack_from_multipage(path: Path, rgb: str | None) -> SliceStack:
    import tifffile

    try:
        with _damaged_tiff(path), tifffile.TiffFile(path) as tif:
            headers = [(tuple(p.shape), np.dtype(p.dtype)) for p in tif.pages]
    except (tifffile.TiffFileError, OSError, ValueError) as e:
        raise IncasemError(f"{path}: not a readable TIFF ({e})") from None
    first_shape, first_dtype = headers[0]
    height, width, channels = _slice_shape(first_shape, str(path), rgb)
    for index, (shape, dtype) in enumerate(headers):
        if shape != first_shape or dtype != first_dtype:
            raise IncasemError(
                f"{path}: page {index} is {list(shape)} {dtype} but page 0 is "
                f"{list(first_shape)} {first_dtype}; all pages must have the same size and dtype"
            )
    return SliceStack(
        slices=tuple((str(path), i) for i in range(len(headers))),
        slice_shape=(height, width),
        file_dtype=first_dtype.str,
        channels=channels,
        rgb=rgb if channels else None,
        name=str(path),
    )


def open_slice_stack(
    path: str | os.PathLike, regex: str = DEFAULT_SLICE_REGEX, rgb: str | None = None
) -> SliceStack:
    """Find and check a stack: a directory of 2D slices, or one (multi-page) TIFF file.

    Args:
        path: a directory of ``.tif``/``.tiff``/``.png`` slices, or a TIFF file whose pages are
            the sections.
        regex: for directories, a regular expression searched in each file name (case
            insensitive) whose first group (or group named ``z``) captures the section number;
            files that do not match are ignored. Sections are ordered by that number, which must
            run without gaps or repeats.
        rgb: how to reduce RGB(A) slices to one value per voxel (see `RGB_MODES`); RGB slices
            without it are refused.

    Raises `IncasemError` naming the culprit for a missing path, no matching files, gaps,
    duplicates, unreadable files and slices of differing size or dtype. Reads headers only.
    """
    path = Path(path)
    if rgb is not None and rgb not in RGB_MODES:
        raise IncasemError(f"--rgb {rgb!r}: choose one of {', '.join(RGB_MODES)}")
    if path.is_dir():
        return _stack_from_directory(path, regex, rgb)
    if path.is_file():
        if path.suffix.lower() not in TIFF_SUFFIXES:
            raise IncasemError(f"{path}: expected a directory of slices or a (multi-page) TIFF")
        return _stack_from_multipage(path, rgb)
    raise IncasemError(f"{path}: no such file or directory")


def open_slice_stacks(
    paths: Sequence[str | os.PathLike], regex: str = DEFAULT_SLICE_REGEX, rgb: str | None = None
) -> list[SliceStack]:
    """`open_slice_stack` for each path (e.g. raw and labels directories), checked up front."""
    return [open_slice_stack(p, regex=regex, rgb=rgb) for p in paths]
