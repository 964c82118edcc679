#!/usr/bin/env python
"""Run the throughput benchmark (same as `imagebatch bench`); see --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
