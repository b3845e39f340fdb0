"""Where do the blocky 8×8 edge artefacts and the stride-2 checkerboard of LRP maps on the
demo's DenseNet-121 come from? Measures two statistics of the maps of several methods on a
trained and on a randomly initialised model, at two input sizes:

* ``grid8``: mean |horizontal + vertical pixel difference| across the boundaries of the
  8-pixel grid divided by the same inside the 8-pixel cells (1 = no block structure);
* ``checker``: energy of the map filtered with [[1, -1], [-1, 1]] (the stride-2 checkerboard)
  divided by the energy of the map (0.25 for white noise, ~0 for smooth maps).

    python benchmarks/edge_artefacts.py --checkpoint best.pt --csv phantom/test.csv [--n 4]

If the statistics are the same for gradient × input (plain autograd, no LRP engine) as for
the LRP rules, and the same for a random model, the structure is the architecture's (strided
conv0 / max-pool / 2×2 average-pool transitions), not the engine's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chexplain.data.chexpert import CheXpertDataset  # noqa: E402
from chexplain.evaluate.baselines import Attributor  # noqa: E402
from chexplain.models.densenet import chexpert_densenet, load_trained  # noqa: E402

METHODS = ("lrp-z", "lrp-epsilon", "epsilon-plus-flat", "lrp-alpha2beta1", "gradient-x-input")


def grid8(R: torch.Tensor, period: int = 8) -> float:
    dx = (R[:, :, 1:] - R[:, :, :-1]).abs()  # boundary between column j and j+1
    dy = (R[:, 1:, :] - R[:, :-1, :]).abs()
    bx = (torch.arange(dx.shape[2]) % period) == period - 1
    by = (torch.arange(dy.shape[1]) % period) == period - 1
    on = torch.cat([dx[:, :, bx].flatten(), dy[:, by, :].flatten()]).mean()
    off = torch.cat([dx[:, :, ~bx].flatten(), dy[:, ~by, :].flatten()]).mean()
    return float(on / off.clamp(min=1e-30))


def checker(R: torch.Tensor) -> float:
    k = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=R.dtype).view(1, 1, 2, 2) / 2
    c = F.conv2d(R[:, None], k, stride=2)
    return float((c ** 2).sum() / (R ** 2).sum().clamp(min=1e-30) * 4 / 4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--sizes", default="128,120")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    trained, meta = load_trained(args.checkpoint)
    torch.manual_seed(0)
    random_model, _ = chexpert_densenet(meta["arch"], 14, None)
    random_model.eval()
    print("| model | input px | method | grid8 (1 = none) | checker (noise 0.25) |")
    print("|---|---:|---|---:|---:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        ds = CheXpertDataset(args.csv, masks=False, size=size, normalization=meta["normalization"])
        x = torch.stack([ds[i]["image"] for i in range(args.n)])
        for name, model in (("trained", trained), ("random init", random_model)):
            with torch.no_grad():
                t = model(x).argmax(1)
            for m in args.methods.split(","):
                R = Attributor(model, m, meta["normalization"])(x, t).double()
                print(f"| {name} | {size} | {m} | {grid8(R):.2f} | {checker(R):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
