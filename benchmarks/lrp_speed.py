"""LRP speed on DenseNet-121 (14 outputs, random weights): ours for each preset, Zennit's nearest
composite, and all 14 classes at once, against forward and forward+backward of the same model.

    python benchmarks/lrp_speed.py [--batch 8] [--size 224] [--device cpu] [--threads 2] [--repeat 3]

Zennit is optional (a dev dependency); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import table, timeit  # noqa: E402

import chexplain  # noqa: E402

PRESETS = {  # preset -> (params, Zennit composite name or None)
    "lrp-epsilon": ({}, None),
    "lrp-zplus": ({}, None),
    "epsilon-plus-flat": ({}, "EpsilonPlusFlat"),
    "lrp-alpha2beta1": ({}, None),
    "epsilon-alpha2beta1-flat": ({}, "EpsilonAlpha2Beta1Flat"),
    "epsilon-gamma-box": ({"low": -2.2, "high": 2.7}, "EpsilonGammaBox"),
    "dtd": ({"low": -2.2, "high": 2.7}, None),
}


def _zennit(model, x, name, device):
    try:
        from zennit import composites
        from zennit.attribution import Gradient
    except ImportError:
        return None
    kwargs = {"low": torch.full_like(x[:1], -2.2), "high": torch.full_like(x[:1], 2.7)} if "Box" in name else {}
    composite = getattr(composites, name)(**kwargs)
    grad_out = torch.zeros(x.shape[0], 14, device=device)
    grad_out[:, 3] = 1.0

    def run():
        with Gradient(model=model, composite=composite) as attributor:
            attributor(x, grad_out)
    return timeit(run, device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = args.device
    model = torchvision.models.densenet121(weights=None, num_classes=14).eval().to(dev)
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)
    t = lambda fn: timeit(fn, repeat=args.repeat, device=dev)  # noqa: E731

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        xi = x.clone().requires_grad_(True)
        model(xi)[:, 3].sum().backward()
        model.zero_grad(set_to_none=True)

    rows = [("forward", t(forward)), ("forward + backward", t(forward_backward))]
    for preset, (params, zennit_name) in PRESETS.items():
        lrp = chexplain.LRP(model, preset, **params)
        rows.append((f"chexplain {preset} (1 class)", t(lambda: lrp(x, target=3))))
        if preset == "epsilon-plus-flat":
            rows.append((f"chexplain {preset} (all 14 classes)", t(lambda: lrp(x, target="all"))))
    for name in ("EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat", "EpsilonGammaBox"):
        sec = _zennit(model, x, name, dev)
        if sec is not None:
            rows.append((f"zennit {name} (no canonizer)", sec))
    print(f"DenseNet-121, 14 outputs, batch {args.batch}, {args.size}px, {dev}, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(table(rows, "forward + backward"))
    one = dict(rows)["chexplain epsilon-plus-flat (1 class)"]
    every = dict(rows)["chexplain epsilon-plus-flat (all 14 classes)"]
    print(f"all 14 classes / one class: {every / one:.2f}×")


if __name__ == "__main__":
    main()
