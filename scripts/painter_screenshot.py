"""The README's screenshot of the painter (``incasem annotate paint``): the synthetic cell's
mitochondria, strokes on 3 planes per axis, one Segment.

    xvfb-run -a python scripts/painter_screenshot.py docs/images/painter.png

Needs the gui extra (``pip install -e ".[gui]"``) and a display (a virtual one is fine).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from skimage.io import imsave

from incasem.annotate import simulate_strokes
from incasem.annotate.paint import open_painter
from incasem.atomic import write_atomic
from incasem.io import open_array
from incasem.phantom import write_cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cell = Path(tmp) / "cell.zarr"
        write_cell(cell, shape=(96, 128, 128))
        truth = open_array(cell, "volumes/labels/mito")[:]
        painter = open_painter(cell, "volumes/raw", "volumes/seeds/painted", show=True)
        painter.seeds_layer.data = simulate_strokes(truth, planes_per_axis=3)
        painter.segment()
        painter.viewer.dims.set_point(0, 5 * 48)
        painter.viewer.window._qt_window.resize(1100, 700)
        image = painter.viewer.screenshot(canvas_only=False, flash=False)
        write_atomic(args.out, lambda t: imsave(t, image, extension=".png"), overwrite=True)
        print(f"wrote {args.out}")
        painter.viewer.close()


if __name__ == "__main__":
    main()
