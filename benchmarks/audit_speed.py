"""Speed of ``chexplain audit``, side by side in one run (times are medians of interleaved rounds).

    python benchmarks/audit_speed.py --n 64 --size 64 --arch densenet121 --threads 2
    python benchmarks/audit_speed.py --spray-only --spray-sizes 10000,30000,100000

1. Explaining a data set (:func:`chexplain.audit.explain_dataset`: phantom JPEGs decoded by a
   DataLoader, relevance pooled to 32² and 64², shards written) against calling
   :class:`chexplain.LRP` on the same images pre-loaded as batches, and against one
   forward + backward pass (gradient) of the model on those batches. The bar: the data set
   path reaches ≥ 0.9× the pre-loaded LRP's throughput.
2. SpRAy (:func:`chexplain.audit.spray`, default options: kNN affinity, exact up to 5,000 maps
   and approximate beyond, relative eigengap, spectral clustering, spectral embedding above
   2,000 maps) on synthetic maps of 32 × 32 with 4 planted strategies, at each of
   ``--spray-sizes`` in a process of its own: the time, the peak resident memory while SpRAy
   runs (the maps included; the kernel's high-water mark, reset after the maps are made) and
   the adjusted Rand index against the planted strategies (bar ≥ 0.95 at every size); the
   time at the largest size over the time at the smallest (bar ≤ 15× for 100,000 / 10,000
   maps: near-linear, where 10× is linear).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
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


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def spray_one(n: int, knn: str = "auto") -> dict:
    """SpRAy on ``n`` planted maps in this process: seconds, RSS before and peak RSS (MiB), ARI."""
    import resource

    from sklearn.metrics import adjusted_rand_score

    from chexplain.audit.spray import SprayConfig, spray

    maps, truth = planted(n)
    try:  # reset the high-water mark: the peak below is SpRAy's, not the maps' generator's
        Path("/proc/self/clear_refs").write_text("5")
        peak_of = "SpRAy"
    except OSError:
        peak_of = "the process"
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    res = spray(maps, SprayConfig(knn=knn))
    sec = time.perf_counter() - t0
    peak = _status_kb("VmHWM") if peak_of == "SpRAy" else None
    peak = peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"n": n, "seconds": sec, "rss_before_mib": (before or 0) / 1024, "peak_mib": peak / 1024,
            "peak_of": peak_of, "clusters": res.n_clusters, "embedding": res.embedding_kind,
            "ari": float(adjusted_rand_score(truth, res.labels))}


def spray_sizes(sizes: list[int], threads: int, knn: str = "auto") -> None:
    print(f"2. SpRAy on synthetic maps of 32×32 (4 planted strategies), one process per size, "
          f"{threads} threads, neighbours {knn}")
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--spray-one", str(n), "--threads", str(threads),
                              "--knn", knn],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        print(f"   {n:>7} maps: {r['seconds']:7.1f} s, peak RSS {r['peak_mib']:7.0f} MiB "
              f"(before SpRAy {r['rss_before_mib']:.0f} MiB; peak of {r['peak_of']}), "
              f"{r['clusters']} clusters, embedding {r['embedding']}, ARI vs planted {r['ari']:.3f} "
              f"(bar ≥ 0.95)", flush=True)
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"   time {b['n']} / {a['n']} maps: {b['seconds'] / a['seconds']:.1f}× for "
              f"{b['n'] / a['n']:.0f}× the maps (bar ≤ 15× for 10× the maps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="images explained per round")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spray-sizes", default="10000,30000,100000",
                    help="numbers of maps SpRAy clusters, comma-separated")
    ap.add_argument("--spray-only", action="store_true", help="skip part 1 (explaining)")
    ap.add_argument("--spray-one", type=int, help=argparse.SUPPRESS)  # one size, JSON on stdout
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--knn", default="auto", choices=("auto", "exact", "approximate"),
                    help="SpRAy's neighbours (see chexplain audit --knn)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.spray_one:
        print(json.dumps(spray_one(args.spray_one, args.knn)))
        return
    sizes = [int(v) for v in args.spray_sizes.split(",") if v.strip()]
    if args.spray_only:
        spray_sizes(sizes, args.threads, args.knn)
        return

    from chexplain import LRP
    from chexplain.audit.explain import MapMaker, explain_dataset
    from chexplain.audit.sources import open_source
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
              f"img/s (bar ≥ 0.9×)")

        spray_sizes(sizes, args.threads, args.knn)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
