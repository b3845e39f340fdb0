"""Does a suite kind's model use its marker, and do the relevance maps show it?

For the marked test positives of one kind of ``audit_phantom.py --suite`` (run first; its
``--out`` is read): the **oracle drop**, f(x) − f(x with the drawn pixels, grown by 1 px,
blurred), against the same mask shifted at random (8 draws), and per method the
**concentration** of the map's positive relevance on the drawn pixels (its share there over
their share of the image; 1 = no more than anywhere else) and how often the hottest 4×4-px
cell of the 64-px map touches them. The drawn pixels come from the drawers' masks, which the
audit never reads::

    PYTHONPATH=../src python audit_marker_maps.py --out runs/suite --kind dim-lungs \\
        --methods epsilon-plus-flat,lrp-epsilon,lrp-alpha2beta1,gradient-x-input \\
        --ig-blur 3
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import default_collate

import _audit_suite as S
from chexplain.audit.pooling import sum_pool
from chexplain.audit.sources import open_source
from chexplain.evaluate.baselines import Attributor
from chexplain.evaluate.faithfulness import baseline_image
from chexplain.zoo import load_model


def drawn_masks(test_csv: Path, kind: str, keys: list[str], side: int) -> torch.Tensor:
    """(N, 1, side, side) bool: the kind's drawn pixels of ``keys``, grown by 1 px."""
    import _shortcut_drawers as drawers
    from PIL import Image

    from chexplain.data.phantom import mask_file
    from chexplain.data.shortcuts import SHORTCUT_MASKS

    drawn = drawers.read_shortcut(test_csv) if kind in drawers.KINDS else None
    out = []
    for k in keys:
        m = drawn[k] if drawn is not None else \
            np.asarray(Image.open(mask_file(test_csv.parent.parent / k, SHORTCUT_MASKS[kind]))) > 0
        out.append(ndimage.binary_dilation(m, iterations=1))
    t = torch.from_numpy(np.stack(out))[:, None].float()
    return F.interpolate(t, size=(side, side), mode="nearest") > 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the suite's --out")
    ap.add_argument("--kind", required=True)
    ap.add_argument("--observation", default="Pleural Effusion")
    ap.add_argument("--methods", default="epsilon-plus-flat,lrp-epsilon,lrp-alpha2beta1,gradient-x-input")
    ap.add_argument("--ig-blur", type=float, default=0.0,
                    help="also integrated gradients from a baseline blurred by this σ (px)")
    ap.add_argument("--max-images", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    folder = args.kind  # a kind, or a kind drawn at another strength: anywhere-s0.85
    kind = re.sub(r"-s[0-9.]+$", "", folder)
    test_csv = out / "data" / f"{folder}-test" / "test.csv"
    obs = S.observation(kind, args.observation)
    loaded = load_model(out / f"model-{folder}" / "best.pt")
    source = open_source(list(loaded.names), loaded.preprocess, str(test_csv), None, None, None,
                         None, warn_missing=False)
    cls = list(loaded.names).index(obs)
    marked = S.marker_images(test_csv, kind)
    keys = list(source.keys)
    chosen = [i for i, k in enumerate(keys) if marked[k] and source.labels[i, cls] == 1][:args.max_images]
    x = default_collate([source.dataset[i] for i in chosen])["image"]
    side = x.shape[-1]
    mask = drawn_masks(test_csv, kind, [keys[i] for i in chosen], side)
    model = loaded.module
    base = baseline_image(x, "blur", patch=max(1, side // 16))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        f0 = model(x)[:, cls]
        d_drawn = (f0 - model(torch.where(mask, base, x))[:, cls]).numpy()
        d_shift = np.zeros(len(chosen))
        for _ in range(8):
            shifted = torch.stack([torch.roll(m, (int(rng.integers(-side // 3, side // 3)),
                                                  int(rng.integers(-side // 3, side // 3))), (-2, -1))
                                   for m in mask])
            d_shift += (f0 - model(torch.where(shifted, base, x))[:, cls]).numpy() / 8
    print(f"{folder}: {len(chosen)} marked positives; blurring the drawn pixels lowers the logit by "
          f"{d_drawn.mean():.2f} on average, the same mask shifted at random by {d_shift.mean():.2f}")
    mask64 = F.interpolate(mask.float(), size=(64, 64), mode="nearest")[:, 0] > 0.5
    cell = sum_pool(mask64.double(), 16) > 0
    methods = [(m, {}) for m in args.methods.split(",") if m]
    if args.ig_blur > 0:
        methods.append(("integrated-gradients", {"baseline": "blur", "blur_sigma": args.ig_blur,
                                                 "steps": 16}))
    for name, params in methods:
        R = Attributor(model, name, loaded.normalization, **params)(x, target=cls).double()
        pos = sum_pool(R.clamp(min=0), 64)
        total = pos.flatten(1).sum(1)
        ok = total > 0
        share = (pos * mask64).flatten(1).sum(1)[ok] / total[ok]
        conc = (share / mask64.double().flatten(1).mean(1)[ok]).numpy()
        hottest = sum_pool(pos, 16).flatten(1).argmax(1)
        on = cell.flatten(1).gather(1, hottest[:, None])[:, 0][ok].numpy()
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        print(f"  {label:<60} concentration median {np.median(conc):5.2f} (10-90 %: "
              f"{np.percentile(conc, 10):.2f}-{np.percentile(conc, 90):.2f}), hottest cell on the "
              f"drawing {on.mean():.2f}")


if __name__ == "__main__":
    main()
