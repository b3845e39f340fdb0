"""``chexplain explain`` on 32 images: a model given by spec vs the chexplain checkpoint of the
same DenseNet-121 (the same torchvision module and weights), side by side.

    python benchmarks/spec_speed.py                         # tiny DenseNet, 32 images, 64 px
    python benchmarks/spec_speed.py --arch densenet121 --image-size 224 --rounds 3

Random weights (no download). The checkpoint is written as ``chexplain chexpert train`` writes
it; the spec holds the same module and weights: ``torchvision:densenet121 --weights STATE_DICT``
for DenseNet-121, ``FACTORY.py:build --weights STATE_DICT`` for the tiny DenseNet. Each
round runs the whole command (loading, checks, every image's maps and figures) once per case,
interleaved, after a one-image warm-up per case; the table gives the median wall time and the
ratio spec / checkpoint. Loading alone (``chexplain.load_model``) is timed the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import samples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("tiny", "densenet121"), default="tiny")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--methods", default="lrp-epsilon,gradcam")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from chexplain.cli import main as cli
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.data.phantom import write_phantom
    from chexplain.jobs.explain import find_images
    from chexplain.models.densenet import chexpert_densenet, model_meta
    from chexplain.train.checkpoint import save_checkpoint
    from chexplain.zoo import load_model

    tmp = Path(tempfile.mkdtemp(prefix="spec_speed_"))
    torch.manual_seed(0)
    model, init = chexpert_densenet(args.arch, 14, None)
    ckpt = save_checkpoint(tmp / "best.pt", model, epoch=1, meta=model_meta(
        args.arch, 14, 3, OBSERVATIONS, "imagenet", args.image_size, init))
    state = tmp / "state.pt"
    torch.save(model.state_dict(), state)
    csv = write_phantom(tmp / "phantom", args.images, size=max(64, args.image_size), seed=0,
                        progress=False)
    images = [str(p) for p in find_images([csv.parent / "train"])][:args.images]
    spec = "torchvision:densenet121"
    if args.arch == "tiny":
        spec = f"{tmp / 'factory.py'}:build"
        (tmp / "factory.py").write_text(
            "from chexplain.models.densenet import chexpert_densenet\n\n\ndef build():\n"
            "    return {'model': chexpert_densenet('tiny', 14, None)[0], 'normalization': "
            "'imagenet'}\n")
    models = {"checkpoint": ["--model", str(ckpt)],
              "spec": ["--model", spec, "--weights", str(state), "--image-size", str(args.image_size)]}
    a = load_model(ckpt)
    b = load_model(spec, weights=state, image_size=args.image_size)
    x = torch.randn(2, 3, args.image_size, args.image_size)
    with torch.no_grad():
        assert torch.equal(a.module(x), b.module(x)), "not the same model"

    def run(name: str, files: list[str]):
        def explain():
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli(["explain", *models[name], *files, "--methods", args.methods,
                            "--out", str(tmp / f"out_{name}"), "--quiet"]) == 0
        return explain

    for name in models:  # warm-up: imports, caches
        run(name, images[:1])()
    loads = samples({"checkpoint": lambda: load_model(ckpt),
                     "spec": lambda: load_model(spec, weights=state, image_size=args.image_size)},
                    rounds=3, warm=False, verbose=False)
    times = samples({name: run(name, images) for name in models}, rounds=args.rounds,
                    warm=False, verbose=True)
    med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    load = {k: statistics.median(w for w, _ in v) for k, v in loads.items()}
    print(f"\nexplain, {args.arch}, {len(images)} images, {args.image_size} px, methods {args.methods}, "
          f"{args.threads} thread(s), median of {args.rounds} round(s):")
    print("| model | explain wall s | load_model wall s |\n|---|---:|---:|")
    for k in models:
        print(f"| {k} | {med[k]:.2f} | {load[k]:.3f} |")
    print(f"ratio spec / checkpoint: explain {med['spec'] / med['checkpoint']:.3f}, "
          f"load {load['spec'] / load['checkpoint']:.3f}")


if __name__ == "__main__":
    main()
