"""Speed of ``chexplain audit``, side by side in one run (times are medians of interleaved rounds).

    python benchmarks/audit_speed.py --n 64 --size 64 --arch densenet121 --threads 2

1. Explaining a data set (:func:`chexplain.audit.explain_dataset`: phantom JPEGs decoded by a
   DataLoader, relevance pooled to 32² and 64², shards written) against calling
   :class:`chexplain.LRP` on the same images pre-loaded as batches, and against one
   forward + backward pass (gradient) of the model on those batches. The bar: the data set
   path reaches ≥ 0.8× the pre-loaded LRP's throughput.
2. SpRAy (:func:`chexplain.audit.spray`, default options: kNN affinity, relative eigengap,
   spectral clustering, spectral embedding above 2,000 maps) on ``--maps`` synthetic maps of
   32 × 32 with planted strategies (bar: 10,000 maps in ≤ 60 s on 2 cores); the adjusted Rand
   index against the planted strategies is printed too.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _timing import interleaved, table


def planted(n: int, side: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = ((0.12, 0.12), (0.55, 0.35), (0.6, 0.75), (0.2, 0.8))
    truth = rng.integers(0, len(centres), n)
    y, x = np.mgrid[0:side, 0:side] / side
    cy, cx = np.array(centres)[truth].T
    cy = cy + rng.normal(0, 0.015, n)
    cx = cx + rng.normal(0, 0.015, n)
    blob = np.exp(-(((y[None] - cy[:, None, None]) ** 2 + (x[None] - cx[:, None, None]) ** 2)
                    / (2 * 0.06 ** 2)))
    maps = rng.uniform(1.5, 2.0, (n, 1, 1)) * blob + 0.02 * rng.standard_normal((n, side, side))
    return maps.astype(np.float32), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="images explained per round")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--maps", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from chexplain import LRP
    from chexplain.audit.explain import MapMaker, explain_dataset
    from chexplain.audit.sources import open_source
    from chexplain.audit.spray import SprayConfig, spray
    from chexplain.audit.store import ShardPlan, ShardStore
    from chexplain.data.images import IMAGENET, Preprocess
    from chexplain.data.phantom import write_phantom
    from chexplain.models.densenet import chexpert_densenet

    work = Path(tempfile.mkdtemp(prefix="audit-speed-"))
    try:
        csv = write_phantom(work / "phantom", args.n, args.size, seed=0, progress=False)
        torch.manual_seed(0)
        model, _ = chexpert_densenet(args.arch, 14, None)
        model.eval()
        pre = Preprocess(args.size, None, IMAGENET)
        source = open_source(["Pleural Effusion"], pre, csv=csv)
        batches = [torch.stack([source.dataset[i]["image"] for i in range(s, min(s + args.batch_size, args.n))])
                   for s in range(0, args.n, args.batch_size)]
        maker = MapMaker(model, "epsilon-plus-flat", [2], IMAGENET)
        lrp = LRP(model, composite="epsilon-plus-flat")
        runs = iter(range(10**6))

        def dataset_path():
            store = ShardStore(work / f"store-{next(runs)}")
            plan = ShardPlan(args.n, 256)
            store.open({"bench": 1}, plan, resume=False)
            explain_dataset(maker, source, store, plan, IMAGENET, torch.device("cpu"),
                            args.batch_size, args.workers, progress=False)

        def preloaded():
            for x in batches:
                lrp(x, classes=[2])

        def grad():
            for x in batches:
                xg = x.clone().requires_grad_(True)
                model(xg)[:, 2].sum().backward()

        print(f"1. explaining {args.n} phantom images at {args.size} px, {args.arch}, one class, "
              f"batch {args.batch_size}, {args.workers} loader worker(s), {torch.get_num_threads()} threads")
        rows = interleaved({"audit explain_dataset (JPEG → store)": dataset_path,
                            "chexplain.LRP on pre-loaded batches": preloaded,
                            "forward + backward (gradient)": grad}, rounds=args.rounds)
        print(table(rows, "chexplain.LRP on pre-loaded batches", "forward + backward (gradient)"))
        ratio = rows["chexplain.LRP on pre-loaded batches"] / rows["audit explain_dataset (JPEG → store)"]
        print(f"   data-set throughput {args.n / rows['audit explain_dataset (JPEG → store)']:.1f} img/s "
              f"= {ratio:.2f}× the pre-loaded LRP's {args.n / rows['chexplain.LRP on pre-loaded batches']:.1f} "
              f"img/s (bar ≥ 0.8×)")

        maps, truth = planted(args.maps)
        print(f"2. SpRAy on {args.maps} synthetic maps of 32×32 (4 planted strategies)")
        t0 = time.perf_counter()
        res = spray(maps, SprayConfig())
        sec = time.perf_counter() - t0
        from sklearn.metrics import adjusted_rand_score

        print(f"   {sec:.1f} s (bar ≤ 60 s), {res.n_clusters} clusters, embedding "
              f"{res.embedding_kind}, ARI vs planted {adjusted_rand_score(truth, res.labels):.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
