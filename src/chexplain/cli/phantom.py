"""``chexplain phantom``: synthetic chest radiographs with known finding masks."""

from __future__ import annotations

import argparse

from . import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.shortcuts import KINDS

    commands = command_group(subparsers, "phantom", "synthetic radiographs with finding masks",
                             "Synthetic chest radiographs with known findings.")

    gen = commands.add_parser(
        "generate", help="write a phantom set in CheXpert's layout",
        description="Write N phantom images (JPEG), their finding masks (PNG) and a "
                    "CheXpert-style train.csv under DIR; the CheXpert loader reads it unchanged.")
    gen.add_argument("--n", type=int, required=True, help="number of images")
    gen.add_argument("--size", type=int, default=224, help="image height and width (default 224)")
    gen.add_argument("--out", required=True, metavar="DIR", help="output folder")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--prevalence", type=float, default=None,
                     help="probability of each finding (default: 0.3, support devices 0.4)")
    gen.add_argument("--confounder", metavar="OBSERVATION", default=None,
                     help="draw a shortcut (--confounder-kind) correlated with this finding, "
                          "e.g. 'Pleural Effusion' (shortcut-learning studies)")
    gen.add_argument("--confounder-kind", default="text", choices=KINDS,
                     help="text: a word in a top corner (mask marker, default); laterality: an "
                          "L/R tag in a corner; drain: a chest-drain-like tube (for "
                          "Pneumothorax); site: black padding and a brighter exposure")
    gen.add_argument("--confounder-text", default="PORTABLE", help="the text marker's word")
    gen.add_argument("--confounder-p", type=float, nargs=2, default=(0.9, 0.1),
                     metavar=("P_POS", "P_NEG"),
                     help="marker probability on positive and negative images (default 0.9 0.1)")
    gen.add_argument("--overwrite", action="store_true", help="write into a non-empty DIR; an "
                     "older phantom's images and masks there are removed first")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from ..data.phantom import Confounder, clear_phantom, write_phantom
    from ..validate import positive_int, require_empty

    positive_int(args.n, "--n")
    positive_int(args.size, "--size", 8)
    confounder = None  # every option is checked before an older phantom is removed
    if args.confounder:
        confounder = Confounder(args.confounder, *args.confounder_p, text=args.confounder_text,
                                kind=args.confounder_kind)
    require_empty(args.out, args.overwrite)
    if args.overwrite:
        clear_phantom(args.out)
    csv = write_phantom(args.out, args.n, args.size, args.seed, prevalence=args.prevalence,
                        confounder=confounder, progress=not args.quiet)
    print(f"wrote {args.n} images of {args.size}x{args.size} and their masks; labels in {csv}")
    return 0
