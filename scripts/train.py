"""Train a 3D U-Net for one organelle: ``python scripts/train.py --help``."""

import sys

from incasem.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
