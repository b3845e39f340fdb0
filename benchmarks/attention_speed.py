"""Attention families: LRP and Grad-CAM time against forward(+backward), measured in one run.

    python benchmarks/attention_speed.py                       # ViT-B/16, batch 2, 224 px, CPU
    python benchmarks/attention_speed.py --models vit_b_16 timm:deit_tiny_patch16_224 maxvit_t
    python benchmarks/attention_speed.py --device cuda --batch 32

Random weights (no download), 14 outputs. Per model: traced (LRP), logit equality of the traced
graph (float32, relative), the conservation check of the report (input + absorbed = logit),
then interleaved timings (median over rounds, see _timing.py): forward, forward+backward
(gradient of the explained logit w.r.t. the input), LRP (preset, CP-LRP), LRP with AttnLRP, and
Grad-CAM (default layer). No peer explains these models with LRP (Zennit has no attention
rules; LXT needs its own model classes), so the references are forward and forward+backward.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import samples  # noqa: E402

import chexplain  # noqa: E402


def build(name: str) -> torch.nn.Module:
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False, num_classes=14)
    return getattr(torchvision.models, name)(weights=None, num_classes=14)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vit_b_16"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--preset", default="epsilon-plus-flat")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        model = build(name).eval().to(args.device)
        with torch.no_grad():  # torchvision's ViT zero-initialises its head
            for p in model.parameters():
                if p.ndim == 2 and p.abs().max() == 0:
                    p.normal_(0, 0.02)
        x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
        lrp = chexplain.LRP(model, args.preset)
        attn = chexplain.LRP(model, args.preset, attention="attnlrp")
        cam = chexplain.GradCAM(model)
        res = lrp.explain(x, target=0, report=True)
        with torch.no_grad():
            ref = model(x)
        logit_err = float((res.logits - ref).abs().max() / ref.abs().max())
        per_layer = sum(layer.absorbed[:, 0] for layer in res.report.layers)
        acct = float(((res.relevance.flatten(1).sum(1) + per_layer - ref[:, 0]).abs() / ref[:, 0].abs()).max())

        def fwd_bwd():
            xi = x.clone().requires_grad_(True)
            model(xi)[:, 0].sum().backward()

        def fwd():
            with torch.no_grad():
                model(x)

        cases = {"forward": fwd, "forward+backward": fwd_bwd, f"LRP {args.preset} (CP-LRP)": lambda: lrp(x, target=0),
                 f"LRP {args.preset} (AttnLRP)": lambda: attn(x, target=0), "Grad-CAM": lambda: cam(x, target=0)}
        times = samples(cases, rounds=args.rounds, device=args.device, verbose=False)
        med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
        print(f"\n{name} (batch {args.batch}, {args.size} px, {args.device}), layer for Grad-CAM: {cam.layer}")
        print(f"  traced: yes; logits rel. error {logit_err:.1e}; input + absorbed − logit (rel.) {acct:.1e}")
        for k, t in med.items():
            ref_t = med["forward+backward"] if k.startswith("LRP") else med["forward"]
            print(f"  {k:40s} {t * 1000:9.1f} ms   {t / ref_t:5.2f}x {'fwd+bwd' if k.startswith('LRP') else 'forward'}")
        rows.append((name, med, logit_err, acct))
    print("\n| model | logits err | accounting | LRP CP / fwd+bwd | LRP AttnLRP / fwd+bwd | Grad-CAM / fwd |")
    print("|---|---|---|---|---|---|")
    for name, med, err, acct in rows:
        fb, f = med["forward+backward"], med["forward"]
        lrps = [v for k, v in med.items() if k.startswith("LRP")]
        print(f"| {name} | {err:.0e} | {acct:.0e} | {lrps[0] / fb:.2f} | {lrps[1] / fb:.2f} | {med['Grad-CAM'] / f:.2f} |")


if __name__ == "__main__":
    main()
