"""``chexplain audit``: explain a data set and find the model's Clever-Hans strategies (SpRAy)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from .method_params import add_param_argument
    from .model_args import add_model_arguments

    p = subparsers.add_parser(
        "audit", help="explain a data set and find shortcut strategies (SpRAy)",
        description="Explain every image for the chosen classes into a resumable store, cluster "
                    "each class's relevance maps (Spectral Relevance Analysis), find where each "
                    "cluster's relevance differs from the rest of its class and test that region "
                    "counterfactually. Writes OUT/audit.html, audit.json and CSVs.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="a CheXpert-format CSV (Paths relative to --data)")
    src.add_argument("--images", metavar="DIR", help="a folder of PNG, JPEG or DICOM images")
    src.add_argument("--nih", metavar="DIR", help="a ChestX-ray14 folder (images/, Data_Entry_2017.csv)")
    p.add_argument("--data", metavar="ROOT", help="folder the CSV's Paths are relative to")
    add_model_arguments(p)
    p.add_argument("--classes", help="the model's output names, comma-separated (default: the classes "
                                     "with positive labels; all without labels)")
    p.add_argument("--method", default="epsilon-plus-flat",
                   help="any method of `chexplain explain` (default epsilon-plus-flat)")
    add_param_argument(p, single=True)
    p.add_argument("--max-images", type=int, metavar="N", help="the first N images only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    p.add_argument("--shard-size", type=int, default=256, help="images per store shard (default 256)")
    p.add_argument("--full", action="store_true", help="also store input-resolution maps (float16)")
    p.add_argument("--population", default="auto", help="images clustered per class: auto "
                   "(labelled positives, else predicted positives, else all), positive, "
                   "predicted or all")
    p.add_argument("--clusters", type=int, help="fix the number of clusters (default: eigengap)")
    p.add_argument("--max-clusters", type=int, default=8, help="eigengap search range 2..K (default 8)")
    p.add_argument("--neighbours", type=int, default=10, help="k of the kNN affinity (default 10)")
    p.add_argument("--embedding", default="auto", help="auto, tsne or spectral")
    p.add_argument("--knn", default="auto", help="neighbours of the affinity: auto (exact up to "
                   "5,000 maps of a class, approximate beyond), exact or approximate")
    p.add_argument("--mirror", action="store_true", help="fold left/right before clustering: "
                   "one strategy on either side (a marker in either top corner) is one cluster")
    p.add_argument("--evidence-overlap", type=float, default=0.5, help="an image all of whose "
                   "test cells have at least this share under its finding mask is left out of "
                   "the counterfactual test: its region is the finding's (default 0.5)")
    p.add_argument("--no-strategies", action="store_true", help="report each cluster on its own "
                   "(default: unite the clusters whose distinctive regions coincide)")
    p.add_argument("--min-effect-sd", type=float, default=0.5, help="a strategy is used only if "
                   "removing it lowers the logit by this many standard deviations of the "
                   "class's logits more than random regions (default 0.5)")
    p.add_argument("--matched-effect-sd", type=float, default=1.0, help="the same for the "
                   "matched test of a region lying on the finding: its members must lose this "
                   "many standard deviations more than images with the finding under the same "
                   "cells (default 1.0)")
    p.add_argument("--lung-masks", metavar="DIR", help="lung-field masks: <DIR>/<image>.png")
    p.add_argument("--finding-masks", metavar="DIR", help="finding masks: <DIR>/<image>.png, or "
                   "<DIR>/<class>/<image>.png per class (white = the finding); they replace the "
                   "data's own (the phantom's masks, NIH's boxes) where given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue the store in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from ..audit import AnalysisConfig, AuditConfig, CounterfactualConfig, SprayConfig, run_audit
    from ..audit.distinctive import DistinctConfig
    from .method_params import parse_params
    from .model_args import model_options

    params = parse_params(args.param, [args.method]).get(args.method, {})
    analysis = AnalysisConfig(
        population=args.population, strategies=not args.no_strategies,
        distinct=DistinctConfig(evidence_overlap=args.evidence_overlap),
        spray=SprayConfig(neighbours=args.neighbours, max_clusters=args.max_clusters,
                          n_clusters=args.clusters, embedding=args.embedding, seed=args.seed,
                          mirror=args.mirror, knn=args.knn),
        counterfactual=CounterfactualConfig(seed=args.seed, min_effect_sd=args.min_effect_sd,
                                            matched_effect_sd=args.matched_effect_sd))
    config = AuditConfig(checkpoint=args.model, model_options=model_options(args), out=args.out,
                         csv=args.csv, data=args.data,
                         images=args.images, nih=args.nih, classes=args.classes, method=args.method,
                         method_params=params,
                         max_images=args.max_images, device=args.device, batch_size=args.batch_size,
                         workers=args.workers, shard_size=args.shard_size, full=args.full,
                         lung_masks=args.lung_masks, finding_masks=args.finding_masks, resume=args.resume, analysis=analysis)
    run_audit(config, progress=not args.quiet)
    return 0
