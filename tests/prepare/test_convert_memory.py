"""A stack four times larger than the memory a conversion may use converts: peak memory grows with
the block size, not with the stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from funlib.geometry import Roi

from incasem.io import open_array

# Measured in a fresh process on Linux: the kernel's high-water mark of resident memory is reset
# after the imports and the header scan (writing 5 to /proc/self/clear_refs), so the peak after
# the conversion minus the resident size before it is what the conversion itself needed.
_CONVERT = """
import json, sys
from incasem.prepare.convert import import_volume
from incasem.prepare.stacks import open_slice_stack

def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key))

stack = open_slice_stack(sys.argv[1])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status_mb("VmRSS")
import_volume(stack, sys.argv[2], "volumes/raw", (5, 5, 5), num_workers=0, progress=False,
              max_block_mb=float(sys.argv[3]))
print(json.dumps({"before_mb": before, "peak_mb": status_mb("VmHWM")}))
"""


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-memory reset"
)
def test_a_stack_four_times_the_memory_bound_converts(tmp_path: Path):
    sections, height, width = 128, 1024, 1024  # 128 MiB of uint8
    yy, xx = np.mgrid[:height, :width]
    for z in range(sections):
        tifffile.imwrite(tmp_path / f"s_{z}.tif", ((xx + yy + 3 * z) % 256).astype(np.uint8))
    stack_mb = sections * height * width / 2**20
    bound_mb = stack_mb / 4

    result = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(tmp_path), str(tmp_path / "c.zarr"), "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    growth_mb = peaks["peak_mb"] - peaks["before_mb"]
    print(f"stack {stack_mb:.0f} MiB, peak RSS growth {growth_mb:.1f} MiB (bound {bound_mb:.0f})")
    assert growth_mb < bound_mb

    out = open_array(tmp_path / "c.zarr", "volumes/raw")
    assert out.shape == (sections, height, width)
    last = out[Roi((5 * (sections - 1), 0, 0), (5, 5 * height, 5 * width))]
    expected = ((xx + yy + 3 * (sections - 1)) % 256).astype(np.uint8)
    np.testing.assert_array_equal(last[0], expected)
