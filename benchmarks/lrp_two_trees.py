"""LRP speed of two source trees of chexplain side by side (a refactoring must not slow it):
each round runs one process per tree, alternately, on the same DenseNet-121 (14 outputs,
random weights, seed 0) and batch, and times forward + backward and each preset; the table
gives per tree the median over rounds of each preset's time and of its ratio to forward +
backward, and the new tree's ratio over the old's.

    python benchmarks/lrp_two_trees.py --old ../old/src --new src [--batch 8] [--size 224] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PRESETS = ("lrp-epsilon", "epsilon-plus-flat", "epsilon-gamma-box", "lrp-alpha2beta1")


def child(batch: int, size: int, threads: int, reps: int) -> dict[str, float]:
    """Seconds (median of ``reps``) of forward + backward, each preset, and all 14 classes."""
    import torch
    import torchvision

    import chexplain

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.densenet121(num_classes=14).eval()
    x = torch.randn(batch, 3, size, size)

    def timed(fn) -> float:
        fn()  # warm-up: tracing, canonization, allocator
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    def fwd_bwd() -> None:
        xg = x.clone().requires_grad_(True)
        model(xg)[:, 0].sum().backward()

    res = {"forward+backward": timed(fwd_bwd)}
    for name in PRESETS:
        params = {"low": -2.2, "high": 2.7} if name == "epsilon-gamma-box" else {}
        lrp = chexplain.LRP(model, composite=name, **params)
        res[name] = timed(lambda: lrp(x, target=0))
    lrp = chexplain.LRP(model, composite="epsilon-plus-flat")
    res["epsilon-plus-flat, 14 classes"] = timed(lambda: lrp(x, classes=list(range(14))))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the old tree's src folder")
    ap.add_argument("--new", required=True, help="the new tree's src folder")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2, help="timed calls per process and case")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.batch, args.size, args.threads, args.reps)))
        return
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for tree in (("old", "new") if r % 2 == 0 else ("new", "old")):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(getattr(args, tree)),
                       OMP_NUM_THREADS=str(args.threads))
            out = subprocess.run([sys.executable, __file__, "--child", "--old", args.old, "--new",
                                  args.new, "--batch", str(args.batch), "--size", str(args.size),
                                  "--threads", str(args.threads), "--reps", str(args.reps)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            runs[tree].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r + 1} {tree}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[tree][-1].items()),
                  flush=True)
    cases = list(runs["old"][0])
    print(f"\nDenseNet-121, batch {args.batch}, {args.size} px, {args.threads} threads, "
          f"medians of {args.rounds} rounds")
    print(f"{'case':<32}{'old s':>8}{'new s':>8}{'old ×fwd+bwd':>14}{'new ×fwd+bwd':>14}{'new/old':>9}")
    for c in cases:
        med = {t: statistics.median(run[c] for run in runs[t]) for t in runs}
        ratio = {t: statistics.median(run[c] / run["forward+backward"] for run in runs[t]) for t in runs}
        print(f"{c:<32}{med['old']:>8.2f}{med['new']:>8.2f}{ratio['old']:>14.2f}{ratio['new']:>14.2f}"
              f"{ratio['new'] / ratio['old']:>9.2f}")


if __name__ == "__main__":
    main()
