"""``chexplain chexpert``: CheXpert data commands (``stats``; training and evaluation join later)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chexpert", help="CheXpert data: label statistics ...",
                                   description="Commands on CheXpert-format data sets.")
    commands = parser.add_subparsers(dest="chexpert_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: _help(parser))

    stats = commands.add_parser(
        "stats", help="label counts per observation (the study's Table 1)",
        description="Positive, uncertain and negative counts and percentages per observation; "
                    "blank labels count as negative.")
    stats.add_argument("csv", metavar="CSV", help="CheXpert train.csv or valid.csv (.gz allowed)")
    stats.add_argument("--frontal", action="store_true", help="frontal views only")
    stats.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    stats.set_defaults(func=_stats)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _stats(args: argparse.Namespace) -> int:
    from ..data.chexpert import filter_views, format_stats, label_stats, read_chexpert_csv
    from ..io import write_json

    frame = read_chexpert_csv(args.csv)
    if args.frontal:
        frame = filter_views(frame, frontal_lateral="Frontal")
    stats = label_stats(frame)
    print(format_stats(stats))
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0
