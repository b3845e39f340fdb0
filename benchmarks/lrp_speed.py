"""LRP speed on DenseNet-121 (14 outputs, random weights): chexplain for each preset and for all
14 classes at once, Zennit's nearest composites, against forward and forward+backward (to the
input, as a gradient explanation needs) of the same model, timed in interleaved rounds. "all 14
classes" uses the engine's automatic target chunks; "in one pass" puts all 14 on one target axis.

    python benchmarks/lrp_speed.py [--batch 8] [--size 224] [--device cpu] [--threads 2] [--rounds 3]
                                   [--clock wall|cpu]

Zennit is optional (a dev dependency); without it its rows are skipped. Zennit runs without a
canonizer: its BatchNorm merge pairs modules by order across DenseNet's concatenations and fails on
torchvision's DenseNet-121.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import allocator_option, apply_allocator, interleaved, table  # noqa: E402

import chexplain  # noqa: E402

BOUNDS = {"low": -2.2, "high": 2.7}  # ImageNet-normalised [0, 1] images lie within these
PRESETS = {
    "lrp-epsilon": {},
    "lrp-zplus": {},
    "epsilon-plus-flat": {},
    "lrp-alpha2beta1": {},
    "epsilon-alpha2beta1-flat": {},
    "epsilon-gamma-box": BOUNDS,
    "dtd": BOUNDS,
}
#: Zennit's composites and the chexplain preset each is compared with
ZENNIT = {"EpsilonPlusFlat": "epsilon-plus-flat", "EpsilonAlpha2Beta1Flat": "epsilon-alpha2beta1-flat",
          "EpsilonGammaBox": "epsilon-gamma-box"}


def _zennit_cases(model, x, target):
    try:
        from zennit import composites
        from zennit.attribution import Gradient
    except ImportError:
        return {}
    grad_out = torch.zeros(x.shape[0], 14, device=x.device)
    grad_out[:, target] = 1.0
    cases = {}
    for name in ZENNIT:
        kwargs = {k: torch.full_like(x[:1], v) for k, v in BOUNDS.items()} if "Box" in name else {}
        composite = getattr(composites, name)(**kwargs)

        def run(composite=composite):
            with Gradient(model=model, composite=composite) as attributor:
                attributor(x, grad_out)
        cases[f"zennit {name} (no canonizer)"] = run
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-zennit", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (default) or process CPU time (with --threads 1 on a shared machine)")
    allocator_option(ap)
    args = ap.parse_args()
    apply_allocator(ap, args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev, target = args.device, 3
    model = torchvision.models.densenet121(weights=None, num_classes=14).eval().to(dev)
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xi)[:, target].sum(), xi)

    cases = {"forward": forward, "forward + backward": forward_backward}
    for preset, params in PRESETS.items():
        lrp = chexplain.LRP(model, preset, **params)
        cases[f"chexplain {preset}"] = lambda lrp=lrp: lrp(x, target=target)
        if preset == "epsilon-plus-flat":
            cases[f"chexplain {preset}, all 14 classes"] = lambda lrp=lrp: lrp(x, target="all")
            one_pass = chexplain.LRP(model, preset, target_chunk=14)
            cases[f"chexplain {preset}, all 14 classes in one pass"] = lambda lrp=one_pass: lrp(x, target="all")
    if not args.no_zennit:
        cases.update(_zennit_cases(model, x, target))
    rows = interleaved(cases, rounds=args.rounds, device=dev, clock=args.clock)
    print(f"DenseNet-121, 14 outputs, batch {args.batch}, {args.size}px, {dev}, {args.threads} threads, {args.clock} clock, "
          f"{args.allocator} allocator, torch {torch.__version__}, median of {args.rounds} interleaved rounds")
    print(table(rows, "forward + backward", "forward"))
    one, every = rows["chexplain epsilon-plus-flat"], rows["chexplain epsilon-plus-flat, all 14 classes"]
    print(f"all 14 classes / one class (epsilon-plus-flat): {every / one:.2f}×; each further class "
          f"{(every - one) / 13:.3f} s = {(every - one) / 13 / rows['forward + backward']:.2f}× forward + backward; "
          f"all 14 at once / 14 one-class calls: {every / (14 * one):.2f}")
    for name, ours in ZENNIT.items():
        key = f"zennit {name} (no canonizer)"
        if key in rows:
            print(f"zennit {name} / chexplain {ours}: {rows[key] / rows['chexplain ' + ours]:.2f}×")


if __name__ == "__main__":
    main()
