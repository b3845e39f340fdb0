"""Attribution speed and memory: chexplain vs Captum vs one forward+backward, side by side.

    python benchmarks/attribution_speed.py                       # DenseNet-121, batch 8, 224 px, CPU
    python benchmarks/attribution_speed.py --device cuda
    python benchmarks/attribution_speed.py --size 32 --batch 1 --steps 2 --n 2 --rounds 1   # smoke test

Random weights (no download), 14 outputs. Cases: Integrated Gradients at each of ``--steps``
(chexplain's wrapper vs Captum's IntegratedGradients, same batch of interpolated images per
pass), SmoothGrad with ``--n`` samples (chexplain vs Captum's NoiseTunnel(Saliency)), Occlusion
(chexplain vs Captum's Occlusion), each against one forward+backward of the batch. Timing: the
median wall time over interleaved rounds (every case once per round, so that a change of load
hits all alike), after a warm-up call unless ``--no-warm-up``. Peak memory: the largest over the
timed calls; on CUDA the allocator's peak, on CPU the peak resident set size sampled every
millisecond above the resident size before the call (torch's allocations are not seen by
tracemalloc); ``forward+backward of K images`` is one pass of Integrated Gradients' size
(``--ig-batch``), what its peak should not exceed; with ``--isolate`` every call runs in a fresh process, so that a case's peak does
not depend on the heap that earlier cases left (without it, the first case measured pays for
growing the heap). ``IG memory / fwd+bwd`` compares Integrated Gradients' peak with one
forward+backward of the batch: within ``--ig-batch`` / batch (4 at the defaults) means no more
than that many forward+backward passes held at once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))

_PAGE = 4096


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def timed_peak(fn: Callable[[], object], device: torch.device) -> tuple[float, int]:
    """(wall seconds, bytes above the starting level at the peak) of one call of ``fn``."""
    t = [0.0]

    def call() -> None:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t[0] = time.perf_counter() - start

    peak = peak_memory(call, device)
    return t[0], peak


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes above the starting level at the peak of one call of ``fn``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    start, peak, done = _rss(), [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], _rss()) - start


def cases(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, args: argparse.Namespace) -> dict:
    """name -> (ours, Captum's) for every method, plus the forward+backward reference."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    import chexplain

    t = target.tolist()
    batch = max(args.ig_batch, x.shape[0])
    copies = max(1, args.sg_batch // x.shape[0])  # Captum counts noisy copies of each image
    patches = max(1, args.occ_batch // x.shape[0])  # and patches of each image

    def forward_backward() -> None:
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xg).gather(1, target[:, None]).sum(), xg)

    def one_pass() -> None:  # what one pass of Integrated Gradients holds: batch images at once
        xg = x.repeat((batch + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:batch].clone().requires_grad_(True)
        torch.autograd.grad(model(xg)[:, 0].sum(), xg)

    out: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
        "forward+backward": (forward_backward, None),
        f"forward+backward of {batch} images": (one_pass, None)}
    for steps in args.steps:
        out[f"integrated-gradients steps={steps}"] = (
            lambda s=steps: chexplain.explain(model, x, "integrated-gradients", target=target, steps=s,
                                              batch_size=args.ig_batch),
            lambda s=steps: IntegratedGradients(model).attribute(x, target=t, n_steps=s,
                                                                 internal_batch_size=batch))
    out[f"smoothgrad n={args.n}"] = (
        lambda: chexplain.explain(model, x, "smoothgrad", target=target, n=args.n, batch_size=args.sg_batch),
        lambda: NoiseTunnel(Saliency(model)).attribute(x, nt_samples=args.n, nt_samples_batch_size=copies,
                                                       stdevs=0.15 * float(x.max() - x.min()), target=t, abs=False))
    w, s = args.window, args.stride
    out[f"occlusion window={w} stride={s}"] = (
        lambda: chexplain.explain(model, x, "occlusion", target=target, window=w, stride=s,
                                  batch_size=args.occ_batch),
        lambda: Occlusion(model).attribute(x, sliding_window_shapes=(x.shape[1], w, w), strides=(x.shape[1], s, s),
                                           target=t, perturbations_per_eval=patches))
    return out


def _isolated(name: str) -> tuple[float, int]:
    """(wall s, peak bytes) of case ``name`` run once in a fresh interpreter with the same
    options: its peak resident size owes nothing to what earlier cases left in the heap."""
    import json
    import subprocess

    argv = [a for a in sys.argv[1:] if a not in ("--isolate",)]
    out = subprocess.run([sys.executable, __file__, *argv, "--only", name, "--no-warm-up",
                          "--rounds", "1"], capture_output=True, text=True, check=True).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    return rec["wall"], rec["peak"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", default="32,128", help="Integrated Gradients steps, comma-separated")
    ap.add_argument("--n", type=int, default=25, help="SmoothGrad samples")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--ig-batch", type=int, default=32, help="interpolated images per pass")
    ap.add_argument("--sg-batch", type=int, default=32, help="noisy images per pass")
    ap.add_argument("--occ-batch", type=int, default=128, help="occluded images per pass")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                    help="time the first calls too (long cases at full size)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isolate", action="store_true",
                    help="run every timed call in a fresh process (clean peak memory per case)")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # one case, one call, JSON out (--isolate)
    args = ap.parse_args()
    args.steps = [int(s) for s in args.steps.split(",") if s.strip()]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None, num_classes=14).to(device).eval()
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        target = model(x).argmax(1)
    table = cases(model, x, target, args)
    fns = {}
    for name, (ours, peer) in table.items():
        fns[f"{name} | chexplain" if peer else name] = ours
        if peer is not None:
            fns[f"{name} | captum"] = peer
    if args.only is not None:
        wall, peak = timed_peak(fns[args.only], device)
        print(__import__("json").dumps({"wall": wall, "peak": peak}))
        return
    if args.warm_up and not args.isolate:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    memory = dict.fromkeys(fns, 0)
    for r in range(args.rounds):
        for name, fn in fns.items():
            wall, peak = _isolated(name) if args.isolate else timed_peak(fn, device)
            times[name].append(wall)
            memory[name] = max(memory[name], peak)
            print(f"  round {r + 1}  {name}: {wall:.2f} s, {peak / 2**20:.0f} MiB", flush=True)
    ref = statistics.median(times["forward+backward"])
    print(f"DenseNet-121, batch {args.batch}, {args.size} px, {device}, {args.threads} threads, "
          f"median of {args.rounds} rounds")
    print(f"{'case':<44} {'wall s':>9} {'x fwd+bwd':>10} {'peak MiB':>9}")
    for name in fns:
        wall = statistics.median(times[name])
        print(f"{name:<44} {wall:9.3f} {wall / ref:10.1f} {memory[name] / 2**20:9.1f}")
    for name in fns:
        if " | chexplain" in name:
            peer = name.replace(" | chexplain", " | captum")
            print(f"{name.split(' | ')[0]}: chexplain / captum time "
                  f"{statistics.median(times[name]) / statistics.median(times[peer]):.2f}, memory "
                  f"{memory[name] / max(memory[peer], 1):.2f}")
    one = f"forward+backward of {max(args.ig_batch, args.batch)} images"
    for name in fns:
        if name.startswith("integrated-gradients") and name.endswith("chexplain"):
            print(f"{name}: IG memory / fwd+bwd {memory[name] / max(memory['forward+backward'], 1):.1f} "
                  f"(bound {max(args.ig_batch, args.batch) / args.batch:g}); / {one} "
                  f"{memory[name] / max(memory[one], 1):.2f}")


if __name__ == "__main__":
    main()
