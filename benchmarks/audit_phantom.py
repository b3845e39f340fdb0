"""Acceptance experiment of ``chexplain audit``: does SpRAy find a planted shortcut?

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/audit_phantom.py --n 800 --n-test 400 \
        --size 64 --epochs 3 --kind text --threads 1 --out runs/audit-phantom

1. Two phantom training sets of the same seed: one with a shortcut of ``--kind`` (text,
   laterality, drain, site; ``Confounder(observation, 0.9, 0.1, kind=kind)``: drawn on 90 % of
   positives, 10 % of negatives), one without; a test set of another seed (``--test-seed``)
   where the shortcut is independent of the label (``Confounder(observation, 0.5, 0.5)``).
2. A DenseNet-121 trained on each, for the same number of epochs (random init,
   :func:`chexplain.studies.chexpert.train.train_chexpert`).
3. ``chexplain.audit.run_audit`` of both models on the test set for ``observation``.
4. From the phantom's shortcut masks (read here only, never by the audit): per cluster and per
   strategy (suspect clusters united by shortcut kind) the purity (members with the shortcut /
   members) and recall (shortcut images in it / shortcut images audited), and the
   counterfactual result; printed as one JSON and a Markdown table.

``--suite`` runs the held-out validation suite instead (``_audit_suite``): one shortcut model
per kind of ``--kinds`` (the four above and four drawn by ``_shortcut_drawers``: a dim square
on the upper-left lung field or on either lung field, a texture patch on the body, a hollow
square anywhere), one clean model,
both audited on each kind's test set; ``suite.json`` and ``suite.md`` under ``--out``:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/audit_phantom.py --suite --positives-only \
        --threads 1 --out runs/suite        # --reaudit after a detector change

Variants land in their own folders and rows of the same ``suite.md``: ``--kind-epochs
texture=10`` (a shortcut model trained longer), ``--clean-epochs 10`` (the clean model),
``--drawer-strength texture=0.25,anywhere=0.85`` (a held-out kind drawn stronger). The
shortcut's strength (mean predicted probability with minus without it on the test set, where it
is independent of the label) tells a kind the model did not learn from a miss of the audit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from chexplain.data.phantom import Confounder, write_phantom
from chexplain.studies.chexpert.train import ChexpertTrainConfig, train_chexpert


def _data(out: Path, args) -> dict[str, Path]:
    sets = {"shortcut": (args.n, 0, Confounder(args.observation, 0.9, 0.1, kind=args.kind)),
            "clean": (args.n, 0, None),
            "test": (args.n_test, args.test_seed, Confounder(args.observation, 0.5, 0.5, kind=args.kind))}
    csvs = {}
    for name, (n, seed, conf) in sets.items():
        split = "test" if name == "test" else "train"
        csv = out / "data" / name / f"{split}.csv"
        if not csv.is_file():
            t0 = time.perf_counter()
            write_phantom(csv.parent, n, args.size, seed=seed, confounder=conf, progress=False, split=split)
            print(f"wrote {n} phantom images ({name}) in {time.perf_counter() - t0:.0f} s", flush=True)
        csvs[name] = csv
    return csvs


def _train(csv: Path, run: Path, args) -> Path:
    if not (run / "summary.json").is_file():
        cfg = ChexpertTrainConfig(csv=str(csv), out=str(run), arch=args.arch, weights="none",
                                  image_size=args.size, epochs=args.epochs,
                                  batch_size=args.batch_size, lr=args.lr, device="cpu",
                                  workers=0, patience=0, seed=0, checkpoint_every=20)
        t0 = time.perf_counter()
        train_chexpert(cfg, resume=True, progress=False)
        print(f"trained {run.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return run / "best.pt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--observation", default="Pleural Effusion")
    ap.add_argument("--kind", default="text", help="the shortcut: text, laterality, drain or site")
    ap.add_argument("--test-seed", type=int, default=777)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--population", default="auto", help="audited images per class (see chexplain audit)")
    ap.add_argument("--models", default="shortcut,clean", help="which models to train and audit")
    ap.add_argument("--positives-only", action="store_true",
                    help="explain only the test images positive for --observation (the default "
                         "population; the same clusters at a third of the cost)")
    ap.add_argument("--mirror", action="store_true", help="SpRAy folds left/right (see chexplain audit --mirror)")
    ap.add_argument("--no-strategies", action="store_true", help="one strategy per suspect cluster")
    ap.add_argument("--tag", default="", help="suffix of the audit folders (variants of one store)")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--suite", action="store_true", help="the held-out suite: every kind of --kinds")
    ap.add_argument("--kinds", default=",".join(("dim", "dim-lungs", "texture", "anywhere", "text",
                                                 "laterality", "site", "drain")),
                    help="the suite's shortcut kinds, in the order run")
    ap.add_argument("--kind-epochs", default="",
                    help="suite: other epochs for some kinds' shortcut models, e.g. texture=8,dim=5")
    ap.add_argument("--clean-epochs", type=int, default=0,
                    help="suite: the clean model's epochs (default --epochs); its own folders")
    ap.add_argument("--drawer-strength", default="",
                    help="suite: another strength for held-out kinds (dim: lift, texture: "
                         "amplitude, anywhere: grey), e.g. texture=0.2; its own data and models")
    ap.add_argument("--reaudit", action="store_true",
                    help="suite: recompute the audits' analysis (explanations, models, data reused)")
    ap.add_argument("--reexplain", action="store_true", help="suite: recompute the audits entirely")
    ap.add_argument("--out", default="runs/audit-phantom")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.suite:
        from _audit_suite import run_suite  # noqa: E402  (beside this script)

        run_suite(args)
        return
    out = Path(args.out)
    csvs = _data(out, args)
    ckpts = {name: _train(csvs[name], out / f"model-{name}", args) for name in args.models.split(",")}
    if args.train_only:
        return
    from _audit_acceptance import acceptance  # noqa: E402  (beside this script)

    result = acceptance(ckpts, csvs["test"], out, args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
