#!/usr/bin/env python
"""Write the benchmark's generated photos into a folder: make_bench_images.py DIR [COUNT] [SEED]."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.images import write_bench_images  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    paths = write_bench_images(Path(sys.argv[1]), count, seed)
    print(f"wrote {len(paths)} images to {sys.argv[1]}")
