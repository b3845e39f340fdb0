"""Grad-CAM speed: chexplain vs pytorch-grad-cam vs Captum vs one forward pass, side by side.

    python benchmarks/cam_speed.py                      # DenseNet-121, batch 8, CPU, 2 threads
    python benchmarks/cam_speed.py --device cuda --batch 32

Random weights (no download), 14 outputs, 224x224 inputs. Runs are interleaved (each round
times every method once, after one warm-up run each) so that load drift on a shared machine
hits all rows alike; the table gives the median and minimum wall time and (on CPU) the median
process CPU time, each against the forward pass's. "one class" explains one class per image
(the top class for the peers, given per image: pytorch-grad-cam otherwise explains only the
first image); "14 classes" explains every output of every image. Peers are timed on their
documented DenseNet layer (features = norm5); chexplain on its default (the final ReLU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import samples  # noqa: E402


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

    from chexplain.cam.gradcam import GradCAM, explain_cam

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
    t0 = time.perf_counter()
    GradCAM(model)(x[:1])
    cold = time.perf_counter() - t0
    with PeerGradCAM(model=model, target_layers=[model.features[-1]]) as peer:
        targets = [ClassifierOutputTarget(c) for c in top]
        one = {
            "forward pass (no_grad)": forward,
            "chexplain GradCAM object, one class": lambda: ours(x),
            "chexplain explain_cam, one class": lambda: explain_cam(model, x),
            "Captum LayerGradCam, one class": lambda: captum.attribute(x, target=top),
            "pytorch-grad-cam, one class": lambda: peer(input_tensor=x, targets=targets),
        }
        times = samples(one, args.repeats, args.device, verbose=False)
        if not args.skip_all:
            per_class = [[ClassifierOutputTarget(c)] * batch for c in range(14)]

            def captum_loop() -> None:
                for c in range(14):  # keep one result at a time: Captum's holds the autograd graph
                    captum.attribute(x, target=c).detach()

            def peer_loop() -> None:
                for t in per_class:
                    peer(input_tensor=x, targets=t)

            every = {
                "forward pass (no_grad)": forward,
                "chexplain, 14 classes (target='all')": lambda: ours(x, target="all"),
                "Captum, 14 classes (loop)": captum_loop,
                "pytorch-grad-cam, 14 classes (loop)": peer_loop,
            }
            for label, t in samples(every, max(1, args.repeats // 2), args.device, warm=False, verbose=False).items():
                times.setdefault(label, []).extend(t)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DenseNet-121 (14 outputs), batch {batch}, {args.size}x{args.size}, {name}")
    print(f"chexplain first call (trace + shape pass, 1 image): {cold:.3f} s; layer: {ours.layer}")
    def stats(label: str) -> tuple[float, float, float]:
        wall = [w for w, _ in times[label]]
        return statistics.median(wall), min(wall), statistics.median(c for _, c in times[label])

    f_med, f_min, f_cpu = stats("forward pass (no_grad)")
    print(f"{'method':<40}{'median s':>9}{'x fwd':>7}{'min s':>8}{'x fwd':>7}{'cpu s':>8}{'x fwd':>7}{'runs':>5}")
    for label in times:
        med, low, cpu = stats(label)
        row = f"{label:<40}{med:>9.3f}{med / f_med:>7.2f}{low:>8.3f}{low / f_min:>7.2f}"
        print(row + (f"{cpu:>8.3f}{cpu / f_cpu:>7.2f}" if device.type == "cpu" else f"{'-':>8}{'-':>7}") + f"{len(times[label]):>5}")
    if device.type == "cpu":
        print("cpu s: process CPU time (all threads), robust to other processes on a shared machine")

if __name__ == "__main__":
    main()
