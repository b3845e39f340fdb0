"""Does the counterfactual floor keep a model trained without the shortcut from being flagged?

    OMP_NUM_THREADS=1 python benchmarks/audit_floor_check.py runs/audit-phantom

Forces the strategy test that a marker cluster would get on each model of an
``audit_phantom.py`` run: the labelled-positive test images with the shortcut (the phantom's
masks, read here only), each with its near-white ``bright`` pieces as the hot region (the
fewest grid cells holding 90 % of them), against random regions of the same size; prints the
effect, the old fixed floor (0.1 logit) and the new relative one (0.5 σ of the class's logits).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def main() -> None:
    from _audit_acceptance import shortcut_images
    from chexplain.audit.counterfactual import CounterfactualConfig, counterfactual, hot_cells
    from chexplain.audit.regions import bright_pieces
    from chexplain.audit.store import ShardPlan, ShardStore
    from chexplain.data.images import Preprocess, get_normalization, read_image
    from chexplain.models.densenet import load_trained

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    kind = sys.argv[2] if len(sys.argv) > 2 else "text"
    obs = "Pleural Effusion"
    test_csv = out / "data" / "test" / "test.csv"
    marker = shortcut_images(test_csv, kind)
    result = {}
    for name in ("shortcut", "clean"):
        folder = out / f"audit-{name}"
        index = pd.read_csv(folder / "store" / "index.csv")
        index = index[index["class"] == obs].reset_index(drop=True)
        sd = float(np.std(index["logit"].to_numpy(float), ddof=1))
        n = len(index)
        data = ShardStore(folder / "store").read(ShardPlan(n, 256), ["image64"])
        sel = np.flatnonzero((index["label"] == 1).to_numpy() & index["image"].map(marker).to_numpy(bool))
        bright = bright_pieces(data["image64"][sel])
        keep = bright.reshape(len(sel), -1).any(1)
        sel, bright = sel[keep], bright[keep]
        cfg = CounterfactualConfig()
        hot = np.stack([hot_cells(b.astype(float), cfg.grid, 0.9, cfg.max_cells) for b in bright])
        model, meta = load_trained(str(out / f"model-{name}" / "best.pt"), map_location="cpu")
        model.eval()
        pre = Preprocess(int(meta["image_size"]), None, get_normalization(meta["normalization"]))
        root = test_csv.parent.parent
        x = torch.stack([pre.normalization.apply(pre.image(read_image(root / p)))
                         for p in index["image"].iloc[sel]])
        cf = counterfactual(model, x, meta["observations"].index(obs), hot, cfg, logit_sd=sd)
        result[name] = {"images": int(len(sel)), "logit_sd": round(sd, 3),
                        "drop_hot": round(cf.logit_drop_hot, 3), "drop_control": round(cf.logit_drop_control, 3),
                        "effect": round(cf.effect, 3), "ci": [round(cf.ci_low, 3), round(cf.ci_high, 3)],
                        "p": cf.p_value, "used_with_fixed_0.1_floor": bool(cf.p_value < 0.01 and cf.effect > 0.1),
                        "relative_floor": round(cf.floor, 3), "used": cf.used}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
