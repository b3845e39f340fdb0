"""``chexplain explain``: probabilities, per-method per-class overlays (PNG + .npy) and the
study's figure layouts for radiographs (PNG, JPEG, DICOM) under a trained checkpoint."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..jobs.explain import DEFAULT_METHODS
    from .method_params import add_param_argument
    from .model_args import add_model_arguments

    p = subparsers.add_parser(
        "explain", help="explain radiographs with LRP and Grad-CAM (overlays, study figures)",
        description="Per image: predicted probabilities, an overlay PNG and the raw .npy per "
                    "method and class, and the study's figures (LRP rules, top-3 findings, "
                    "Grad-CAM per class, LRP beside Grad-CAM; correct vs incorrect per class "
                    "with --labels).")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="PNG, JPEG or DICOM files, or folders searched recursively")
    add_model_arguments(p)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated (default {','.join(DEFAULT_METHODS)}); see "
                        "chexplain.methods(), plus gradient-x-input and random")
    add_param_argument(p)
    p.add_argument("--classes", default="top3",
                   help='top3 (topK), all, or the model\'s output names: "Pleural Effusion,Cardiomegaly"')
    p.add_argument("--labels", metavar="CSV", help="labels for the correct/incorrect figure: a "
                   "CheXpert-format CSV or NIH's Data_Entry_2017 CSV")
    p.add_argument("--figure-method", metavar="METHOD", help="method of the correct/incorrect "
                   "figure (default: a composite or alpha-beta among --methods, else the first)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability of a positive "
                   "prediction (default 0.5)")
    p.add_argument("--display-size", type=int, default=256, metavar="PX",
                   help="side of the radiograph in overlays and figures (default 256; the .npy "
                        "maps stay in model-input pixels)")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable images (listed "
                   "in explain.json and here) instead of stopping at the first")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (see "
                   "chexplain.jobs.explain for its layout)")
    p.add_argument("--resume", action="store_true", help="skip the images a run with the same "
                   "options and model finished in --out (progress.jsonl)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from ..jobs.explain import explain_images, parse_methods
    from ..train.loop import resolve_device
    from .method_params import parse_params
    from .model_args import load_from_args

    method_params = parse_params(args.param, parse_methods(args.methods))
    device = resolve_device(args.device)
    model = load_from_args(args, device)
    _warn_phantom(args.model, args.images)
    res = explain_images(model.module, args.images, args.out, model.normalization,
                         model.image_size, model.names, args.methods, args.classes, args.labels,
                         args.threshold, device, display_size=args.display_size,
                         figure_method=args.figure_method,
                         progress=not args.quiet, skip_bad=args.skip_bad, resume=args.resume,
                         about=model.record(), method_params=method_params)
    for rec in res["images"]:
        top = sorted(rec["probabilities"].items(), key=lambda kv: -kv[1])[:3]
        print(f"{rec['path']}: " + ", ".join(f"{n} {p:.2f}" for n, p in top))
    for bad in res["failed"]:
        print(f"skipped {bad['error']}")
    print(f"explained {len(res['images'])} image(s) with {', '.join(res['methods'])} in "
          f"{res['seconds']:.0f} s; figures and maps in {args.out}/")
    return 0


def _warn_phantom(checkpoint: str, images: list[str]) -> None:
    """A phantom-trained model says nothing about real radiographs: say so before the work."""
    import sys
    from pathlib import Path

    from ..data.phantom import phantom_folder, trained_on_phantom

    if not Path(checkpoint).is_file():  # a library or factory spec: no training run beside it
        return
    source = trained_on_phantom(checkpoint)
    real = [p for p in images if phantom_folder(p) is None]
    if source is not None and real:
        print(f"warning: {checkpoint} was trained on phantom radiographs ({source}); its "
              f"predictions and maps on real radiographs such as {real[0]} are meaningless. "
              "Train on CheXpert for real use.", file=sys.stderr)
