"""``chexplain demo`` (what ``make demo`` runs): the main job, offline, on embedded defaults:
phantom radiographs → DenseNet-121 → AUROC → LRP and Grad-CAM explanations → comparison
against the ground-truth masks → quick MNIST reproduction → ``runs/demo/report.html``.
``--quick`` is a smoke run of every step (seconds)."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="offline demo: phantom radiographs -> DenseNet-121 -> LRP / Grad-CAM -> "
                     "metrics -> HTML report (minutes on CPU)")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, few images, one epoch")
    p.add_argument("--epochs", type=int, help="training epochs (default 4; quick 1)")
    p.add_argument("--image-size", type=int, help="model input side in pixels (default 128; "
                   "quick 64)")
    p.add_argument("--no-mnist", action="store_true", help="skip the MNIST reproduction")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores or fewer, whichever "
                   "runs a timed forward pass faster now)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..jobs.demo import DemoConfig, quick_config, run_demo

    over = {"out": args.out, "device": args.device}
    if args.epochs is not None:
        over["epochs"] = args.epochs
    if args.image_size is not None:
        over["image_size"] = args.image_size
    if args.threads is not None:
        over["threads"] = args.threads
    if args.no_mnist:
        over["mnist"] = False
    cfg = quick_config(**over) if args.quick else DemoConfig(**over)
    t0 = time.perf_counter()
    res = run_demo(cfg, progress=not args.quiet)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {res['report']}")
    return 0
