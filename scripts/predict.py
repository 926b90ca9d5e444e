#!/usr/bin/env python
"""Blockwise prediction with daisy, recorded as a Sacred run (the original's ``predict.py``).

Examples (sizes in voxels, z y x)::

    python scripts/predict.py --run_id 3 --data configs/data/cell.json --num_workers 2
    python scripts/predict.py --checkpoint model.pt --input cell.zarr --roi 0 0 0 200 400 400
    python scripts/predict.py with configs/prediction.yaml prediction.data=cell.json \\
        prediction.checkpoint=model.pt prediction.log_metrics=True

See ``python scripts/predict.py --help`` and ``configs/prediction.yaml``.
"""

import sys

from incasem.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
