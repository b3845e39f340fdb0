"""``chexplain chexpert``: CheXpert data commands: ``stats``, ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse

from ...cli import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    commands = command_group(subparsers, "chexpert", "CheXpert: label statistics, training, evaluation",
                             "Commands on CheXpert-format data sets.")

    stats = commands.add_parser(
        "stats", help="label counts per observation (the study's Table 1)",
        description="Positive, uncertain and negative counts and percentages per observation; "
                    "blank labels count as negative.")
    stats.add_argument("csv", metavar="CSV", help="CheXpert train.csv or valid.csv (.gz allowed)")
    stats.add_argument("--frontal", action="store_true", help="frontal views only")
    stats.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    stats.set_defaults(func=_stats)
    _register_train(commands)
    _register_evaluate(commands)


def _register_train(commands: argparse._SubParsersAction) -> None:
    from ...models.densenet import ARCHS
    from .train import SCHEDULES
    from ...train.loop import AMP_MODES

    p = commands.add_parser(
        "train", help="train a 14-output DenseNet-121 (one CPU to many GPUs with torchrun)",
        description="Train a DenseNet-121 with 14 sigmoid outputs (BCE with logits, Adam) on "
                    "CheXpert-format data. Writes OUT/metrics.jsonl (one line per epoch), "
                    "OUT/best.pt, OUT/last.pt, OUT/config.json and OUT/summary.json. Under "
                    "`torchrun --nproc_per_node N -m chexplain chexpert train ...` it trains with "
                    "DistributedDataParallel (NCCL on GPUs, gloo on CPU).")
    p.add_argument("--data", metavar="ROOT", help="folder the CSV's image Paths are relative "
                   "to (the data set's folder or its parent; default: from the CSV's place)")
    p.add_argument("--csv", required=True, help="training labels (train.csv; looked up in ROOT "
                   "too)")
    p.add_argument("--valid", metavar="CSV", help="validation labels (valid.csv); default: a "
                   "patient-level split of --csv")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of patients held out when there is no --valid (default 0.1)")
    p.add_argument("--policy", default="zeros", help="uncertain labels: zeros, ones or ignore "
                   "(U-Ignore: left out of the loss); default zeros, as the study")
    p.add_argument("--frontal", action="store_true", help="frontal views only")
    p.add_argument("--epochs", type=int, default=3, help="default 3 (the study trained 1)")
    p.add_argument("--batch-size", type=int, default=16, help="per process (default 16)")
    p.add_argument("--image-size", type=int, default=224, help="input side in pixels (224)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (1e-4)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                   help="per-step cosine decay to --lr-final x lr (default), reduce-on-plateau "
                        "of the validation mean AUROC, or constant")
    p.add_argument("--lr-final", type=float, default=0.01)
    p.add_argument("--patience", type=int, default=3, help="early stopping: epochs without a "
                   "better validation mean AUROC (default 3; 0 turns it off)")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="densenet121 (default) or tiny (a small DenseNet for quick checks)")
    p.add_argument("--model", metavar="SPEC", help="any architecture instead of --arch: "
                   "torchvision:NAME, timm:NAME or xrv:WEIGHTS, with a new 14-output head")
    p.add_argument("--weights", default="auto", help="auto (pretrained weights from the "
                   "library's local cache when present, else random), imagenet (--arch "
                   "densenet121), none, or a state-dict file")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help="autocast: auto (bf16 or "
                   "fp16 on CUDA, off on CPU), off, bf16, fp16")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="channels-last memory format (auto: on; 1.5x faster training steps on CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=None, help="data-loading processes per "
                   "process (default: from the CPU count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="STEPS",
                   help="mid-epoch checkpoints to OUT/last.pt (default 1000; 0: epoch ends only)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic algorithms (slower on CUDA)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt exactly")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    from ...cli.model_args import add_model_arguments

    p = commands.add_parser(
        "evaluate", help="per-class AUROC of a trained model (the study's Table 2)",
        description="AUROC per observation (undefined, n/a, when a class has no positive or no "
                    "negative), means over defined classes and over the 5 competition "
                    "observations, ROC curves, and the study's Table 2 beside ours. Writes "
                    "DIR/auroc.json, DIR/table2.md, DIR/roc_curves.png, DIR/predictions.csv.")
    add_model_arguments(p)
    p.add_argument("--data", metavar="ROOT", help="folder the CSV's image Paths are relative to")
    p.add_argument("--csv", required=True, help="labels to evaluate on (e.g. valid.csv)")
    p.add_argument("--policy", default=None, help="uncertain labels: zeros, ones or ignore "
                   "(default: the training run's)")
    p.add_argument("--frontal", action="store_true", help="frontal views only")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward (default 32)")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0: "
                   "in the main process)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--amp", choices=("off", "bf16", "fp16", "auto"), default="off",
                   help="autocast for the forwards (default off: float32)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: auroc.json, "
                   "table2.md, roc_curves.png, predictions.csv")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)


def _stats(args: argparse.Namespace) -> int:
    from ...data.chexpert import filter_views, format_stats, label_stats, read_chexpert_csv
    from ...io import write_json
    from ...validate import check_output_file

    if args.json:
        check_output_file(args.json, "--json")
    frame = read_chexpert_csv(args.csv)
    if args.frontal:
        frame = filter_views(frame, frontal_lateral="Frontal")
    stats = label_stats(frame)
    print(format_stats(stats))
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ...errors import ChexplainError
    from .train import ChexpertTrainConfig, train_chexpert
    from ...train.distributed import env_from_torchrun

    if args.model and args.arch:
        raise ChexplainError("give --model SPEC or --arch, not both")

    config = ChexpertTrainConfig(
        csv=args.csv, out=args.out, data=args.data, valid=args.valid, policy=args.policy,
        frontal_only=args.frontal, val_fraction=args.val_fraction, epochs=args.epochs,
        batch_size=args.batch_size, image_size=args.image_size, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, lr_final=args.lr_final,
        patience=args.patience, arch=args.arch or "densenet121", model=args.model,
        weights=None if args.weights.lower() == "none" else args.weights, amp=args.amp,
        channels_last={"auto": None, "on": True, "off": False}[args.channels_last],
        device=args.device, workers=args.workers, seed=args.seed,
        checkpoint_every=args.checkpoint_every, deterministic=args.deterministic)
    summary = train_chexpert(config, resume=args.resume, progress=not args.no_progress)
    best = summary["best_mean_auroc"]
    if env_from_torchrun().is_main:
        print(f"best validation mean AUROC {'n/a' if best is None else f'{best:.4f}'} at epoch "
              f"{summary['best_epoch']}; wrote {args.out}/metrics.jsonl, best.pt, last.pt")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ...evaluate.auroc import evaluate_checkpoint, table2_markdown
    from ...cli.model_args import model_options

    report = evaluate_checkpoint(args.model, args.csv, args.out, data=args.data,
                                 policy=args.policy, frontal_only=args.frontal,
                                 device=args.device, batch_size=args.batch_size,
                                 workers=args.workers, amp=args.amp,
                                 progress=not args.no_progress,
                                 model_options=model_options(args))
    print(table2_markdown(report), end="")
    print(f"wrote {args.out}/auroc.json, table2.md, roc_curves.png, predictions.csv")
    return 0
