"""``python -m probes``: the headless probe CLI (see :mod:`probes.cli`)."""

import sys

from probes.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
