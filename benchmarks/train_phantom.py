"""Train chexplain's CheXpert DenseNet on phantom radiographs and report AUROC and throughput.

    python benchmarks/train_phantom.py --n 2000 --size 128 --epochs 4 --threads 2 --out runs/bench

Writes (once) a phantom training set of ``--n`` images and a held-out phantom test set of
``--n-test`` images (another seed), trains with :func:`chexplain.studies.chexpert.train.train_chexpert`
(validation: a 10 % patient split), evaluates ``best.pt`` on the held-out set with
:func:`chexplain.evaluate.auroc.evaluate_checkpoint`, and prints the per-finding AUROC, the
mean over the drawn findings and the training images per second. Only the phantom's five
drawn findings and "No Finding" have positives; the other eight observations are undefined.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from chexplain.data.phantom import FINDINGS, write_phantom
from chexplain.evaluate.auroc import evaluate_checkpoint
from chexplain.studies.chexpert.train import ChexpertTrainConfig, train_chexpert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--image-size", type=int, default=None,
                    help="training input size (default: --size, the phantom's size)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3, help="1e-3: random initialisation")
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--weights", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="runs/train-phantom")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    train_csv, test_csv = out / "data" / "train" / "train.csv", out / "data" / "test" / "test.csv"
    for csv, n, seed in ((train_csv, args.n, 0), (test_csv, args.n_test, 12345)):
        if not csv.is_file():
            t0 = time.perf_counter()
            write_phantom(csv.parent, n, args.size, seed=seed, split=csv.stem)
            print(f"wrote {n} phantom images to {csv.parent} in {time.perf_counter() - t0:.0f} s")
    image_size = args.image_size or args.size
    run = out / f"run-{args.arch}-{image_size}px"
    config = ChexpertTrainConfig(csv=str(train_csv), out=str(run), arch=args.arch,
                                 weights=args.weights, image_size=image_size, epochs=args.epochs,
                                 batch_size=args.batch_size, lr=args.lr, device=args.device,
                                 workers=args.workers, patience=0)
    t0 = time.perf_counter()
    summary = train_chexpert(config, resume=True)
    wall = time.perf_counter() - t0
    report = evaluate_checkpoint(run / "best.pt", test_csv, run / "eval", device=args.device)
    drawn = {name: report["auroc"][name] for name in ("No Finding",) + FINDINGS}
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    result = {
        "device": summary["device"], "threads": torch.get_num_threads(), "arch": args.arch,
        "init": summary["init"], "phantom_size": args.size, "image_size": image_size, "train_images": summary["train_images"],
        "epochs": summary["epochs_run"], "wall_seconds": round(wall, 1),
        "images_per_second": [round(r["images_per_second"], 2) for r in history],
        "val_mean_auroc": [round(r["mean_auroc"], 4) for r in history],
        "train_loss": [round(r["train_loss"], 4) for r in history],
        "test_images": report["images"], "test_auroc": drawn,
        "test_mean_auroc": report["mean_auroc"],
    }
    print(json.dumps(result, indent=2))
    (run / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
