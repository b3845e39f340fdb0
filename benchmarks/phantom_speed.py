"""Time ``chexplain phantom generate`` (drawing, JPEG encoding, masks and CSV): prints images per
second; asserts nothing.

    python benchmarks/phantom_speed.py [--n 1000] [--size 224]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from chexplain.cli import main as chexplain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        chexplain(["phantom", "generate", "--n", str(args.n), "--size", str(args.size),
                   "--out", str(Path(tmp) / "ph"), "--seed", "1", "--quiet"])
        elapsed = time.perf_counter() - start
    print(f"phantom: {args.n} images at {args.size}x{args.size} in {elapsed:.1f} s "
          f"({args.n / elapsed:.0f} images/s)")


if __name__ == "__main__":
    main()
