"""Grad-CAM speed: chexplain vs pytorch-grad-cam vs Captum vs one forward pass, side by side.

    python benchmarks/cam_speed.py                      # DenseNet-121, batch 8, CPU, 2 threads
    python benchmarks/cam_speed.py --device cuda --batch 32

Random weights (no download), 14 outputs, 224x224 inputs. Each row is the median of
``--repeats`` timed runs after one warm-up run. "one class" explains one class per image
(the top class for the peers, given per image: pytorch-grad-cam otherwise explains only the
first image); "14 classes" explains every output of every image. Peers are timed on their
documented DenseNet layer (features = norm5); chexplain on its default (the final ReLU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torchvision


def _timeit(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    run()  # warm-up (tracing, allocator, kernels)
    return statistics.median(run() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="default: 8 on CPU, 32 on GPU")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-all", action="store_true", help="skip the 14-class rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batch = args.batch or (32 if device.type == "cuda" else 8)

    from captum.attr import LayerGradCam
    from pytorch_grad_cam import GradCAM as PeerGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from chexplain.cam import GradCAM, explain_cam

    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None, num_classes=14).to(device).eval()
    x = torch.randn(batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        top = model(x).argmax(1).tolist()

    def forward() -> object:
        with torch.no_grad():
            return model(x)

    ours = GradCAM(model)
    captum = LayerGradCam(model, model.features)
    rows: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    GradCAM(model)(x[:1])
    cold = time.perf_counter() - t0
    rows.append(("forward pass (no_grad)", _timeit(forward, args.repeats, device)))
    rows.append(("chexplain GradCAM object, one class", _timeit(lambda: ours(x), args.repeats, device)))
    rows.append(("chexplain explain_cam, one class", _timeit(lambda: explain_cam(model, x), args.repeats, device)))
    rows.append(("Captum LayerGradCam, one class", _timeit(lambda: captum.attribute(x, target=top), args.repeats, device)))
    with PeerGradCAM(model=model, target_layers=[model.features[-1]]) as peer:
        targets = [ClassifierOutputTarget(c) for c in top]
        rows.append(("pytorch-grad-cam, one class", _timeit(lambda: peer(input_tensor=x, targets=targets), args.repeats, device)))
        if not args.skip_all:
            rows.append(("chexplain, 14 classes (target='all')", _timeit(lambda: ours(x, target="all"), args.repeats, device)))
            reps = max(1, args.repeats // 2)
            rows.append(("Captum, 14 classes (loop)", _timeit(lambda: [captum.attribute(x, target=c) for c in range(14)], reps, device)))
            per_class = [[ClassifierOutputTarget(c)] * batch for c in range(14)]
            rows.append(("pytorch-grad-cam, 14 classes (loop)", _timeit(lambda: [peer(input_tensor=x, targets=t) for t in per_class], reps, device)))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DenseNet-121 (14 outputs), batch {batch}, {args.size}x{args.size}, {name}; median of {args.repeats}")
    print(f"chexplain first call (trace + shape pass, 1 image): {cold:.3f} s; layer: {ours.layer}")
    fwd = rows[0][1]
    print(f"{'method':<42}{'seconds':>10}{'x forward':>11}")
    for label, sec in rows:
        print(f"{label:<42}{sec:>10.3f}{sec / fwd:>11.2f}")


if __name__ == "__main__":
    main()
