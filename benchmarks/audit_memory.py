"""Peak memory of ``chexplain audit`` at two data-set sizes (the analysis streams the store, so
the peak should hardly grow with the number of images): prints, does not assert.

    PYTHONPATH=src python benchmarks/audit_memory.py --checkpoint tiny.pt [--sizes 250 2000]

Generates a 64-px phantom set of the largest size (``chexplain phantom generate``), audits its
first N images for each size under ``/usr/bin/time -v`` (whole run, then the analysis alone by
``--resume`` on the complete store) and prints the maximum resident set size of each.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def peak(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """(maximum resident set size in KiB, last line of stdout) of one run."""
    proc = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return kib, (proc.stdout.strip().splitlines() or [""])[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a tiny 64-px model (chexpert train --arch tiny)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 2000])
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="chexplain-audit-memory-"))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    cli = [sys.executable, "-m", "chexplain"]
    csv = work / "phantom" / "train.csv"
    if not csv.is_file():
        subprocess.run(cli + ["phantom", "generate", "--n", str(max(args.sizes)), "--size", "64",
                              "--seed", "7", "--out", str(work / "phantom"), "--quiet"], check=True, env=env)
    base = None
    for n in args.sizes:
        out = work / f"audit-{n}"
        audit = cli + ["audit", "--checkpoint", args.checkpoint, "--csv", str(csv), "--max-images",
                       str(n), "--out", str(out), "--quiet"]
        whole, line = peak(audit, env)
        analysis, _ = peak(audit + ["--resume"], env)
        base = base or whole
        print(f"{n:>6} images: peak RSS {whole / 1024:.0f} MiB whole run ({whole / base:.2f}x the "
              f"first size), {analysis / 1024:.0f} MiB analysis alone; {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
