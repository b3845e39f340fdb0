"""``chexplain compare``: faithfulness (region perturbation, AOPC), localisation (pointing game,
relevance mass/rank, IoU) and cascading randomisation of several methods over a data set."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..evaluate.compare import BENCHMARK_METHODS
    from ..evaluate.faithfulness import BASELINES
    from ..evaluate.road import ROAD_NOISE
    from .method_params import add_param_argument
    from .model_args import add_model_arguments

    p = subparsers.add_parser(
        "compare", help="compare explanation methods: AOPC, pointing game, relevance mass, "
                        "randomisation",
        description="Runs every metric for every method over a CheXpert-format data set (the "
                    "phantom's finding masks for localisation) or NIH ChestX-ray14 images (the "
                    "radiologists' boxes); one item per (image, positive "
                    "finding). Writes DIR/compare.json (mean and bootstrap 95 % interval per "
                    "method and metric), summary.csv, items.csv, per_class.csv and plots.")
    add_model_arguments(p)
    p.add_argument("--data", metavar="ROOT", help="folder the CSV's Paths are relative to "
                   "(default: from the CSV's place)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="CheXpert-format labels (e.g. the phantom's test.csv)")
    src.add_argument("--nih", metavar="DIR", help="a ChestX-ray14 folder (images/, Data_Entry_2017*.csv, "
                     "BBox_List_2017.csv): its radiologist boxes as masks, its labels mapped to the "
                     "model's observations")
    p.add_argument("--methods", default=",".join(BENCHMARK_METHODS),
                   help=f"comma-separated (default {','.join(BENCHMARK_METHODS)})")
    add_param_argument(p)
    p.add_argument("--classes", help="the model's outputs to evaluate, comma-separated (default: "
                   "the phantom's findings)")
    p.add_argument("--patch", type=int, default=8, help="perturbed region side in pixels (8)")
    p.add_argument("--steps", type=int, default=16, help="perturbation steps (16)")
    p.add_argument("--baseline", choices=BASELINES, default="blur",
                   help="what removed regions become (default blur; road: the noisy linear "
                        "imputation of Rong et al. 2022)")
    p.add_argument("--road-noise", type=float, default=ROAD_NOISE, metavar="SIGMA",
                   help=f"standard deviation of ROAD's noise in model-input units ({ROAD_NOISE:g}, "
                        "as its reference code)")
    p.add_argument("--tolerance", type=int, default=0, help="pointing-game tolerance in pixels")
    p.add_argument("--iou-threshold", type=float, default=0.5,
                   help="IoU: the map's pixels at or above this share of its maximum (0.5)")
    p.add_argument("--max-items", type=int, help="evaluate at most this many items")
    p.add_argument("--randomisation-items", type=int, default=8,
                   help="items for the randomisation test (0: skip it)")
    p.add_argument("--randomisation-steps", type=int, default=None, metavar="K",
                   help="merge the layer groups into K cascade steps (default: every group)")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples of the items for the 95 %% intervals (1000)")
    p.add_argument("--batch-size", type=int, default=16, help="images explained at once (16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline, tie "
                   "breaking, bootstrap and randomisation (0)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (compare.json, "
                   "CSVs, plots)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..data.chexpert import CheXpertDataset, read_chexpert_csv
    from ..evaluate.compare import CompareConfig, compare, summary_markdown
    from ..jobs.explain import parse_methods
    from ..train.data import resolve_csv, resolve_root
    from ..train.loop import resolve_device
    from ..zoo.labels import check_labelled, in_output_order, resolve_classes
    from .method_params import parse_params
    from .model_args import load_from_args

    methods = parse_methods(args.methods)
    method_params = parse_params(args.param, methods)
    device = resolve_device(args.device)
    model = load_from_args(args, device)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    if args.classes is not None and not classes:
        from ..errors import ChexplainError

        raise ChexplainError(f"--classes {args.classes!r} names no class")
    if classes is not None:
        classes = resolve_classes(classes, model.names)
    if args.nih:
        from ..data.nih import NIHAsObservations, NIHDataset
        from ..data.nih_tables import nih_folder

        images, entries, boxes = nih_folder(args.nih)
        ds = NIHAsObservations(NIHDataset(images, entries, boxes, size=model.image_size,
                                          normalization=model.normalization, missing="skip"),
                               model.names)
    else:
        csv = resolve_csv(args.csv, args.data)
        root = resolve_root(args.data, read_chexpert_csv(csv)["Path"].iloc[0])
        ds = in_output_order(CheXpertDataset(csv, root, masks=True, size=model.image_size,
                                             normalization=model.normalization), model.names)
        check_labelled(classes, model.names, ds, f"{csv}")
    cfg = CompareConfig(methods=tuple(methods), classes=classes, patch=args.patch, steps=args.steps,
                        baseline=args.baseline, tolerance=args.tolerance,
                        iou_threshold=args.iou_threshold, max_items=args.max_items,
                        randomisation_items=args.randomisation_items,
                        randomisation_steps=args.randomisation_steps, batch_size=args.batch_size,
                        bootstrap=args.bootstrap, seed=args.seed, road_noise=args.road_noise,
                        method_params=method_params)
    res = compare(model.module, ds, args.out, model.names, model.normalization, cfg,
                  device, progress=not args.quiet, about=model.record())
    print(summary_markdown(res), end="")
    print(f"{res['n_items']} items from {res['n_images']} images ({res['n_empty']} empty masks "
          f"excluded from localisation) in {res['seconds']:.0f} s; results in {args.out}/compare.json")
    return 0
