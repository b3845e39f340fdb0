"""The ``chexplain`` command line: a thin layer over the Python API.

Each command group lives in its own module exposing ``register(subparsers)``; the handler it
sets with ``set_defaults(func=...)`` returns an exit status. User mistakes raise
:class:`chexplain.errors.ChexplainError` and are printed as one line. Before any handler
runs, its ``--out`` folder is created and proven writable (:func:`chexplain.validate.prepare_out`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..errors import ChexplainError

# command group -> the module that registers it (a study's commands live with the study)
GROUPS = {"mnist": "chexplain.studies.mnist.cli", "chexpert": "chexplain.studies.chexpert.cli",
          "phantom": "chexplain.cli.phantom", "explain": "chexplain.cli.explain",
          "compare": "chexplain.cli.compare", "audit": "chexplain.cli.audit",
          "demo": "chexplain.cli.demo", "view": "chexplain.cli.view"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The program's parser; ``only``: register that command group alone (running one command
    imports only its own module, so ``chexplain view`` starts without loading PyTorch)."""
    parser = argparse.ArgumentParser(
        prog="chexplain",
        description="Explain image classifiers (chest radiographs) with LRP and Grad-CAM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in GROUPS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    return parser


def command_group(subparsers: argparse._SubParsersAction, name: str, help: str,
                  description: str) -> argparse._SubParsersAction:
    """``chexplain NAME SUBCOMMAND``: the group's subparsers; without a subcommand the group
    prints its help and exits with status 2."""
    group = subparsers.add_parser(name, help=help, description=description)
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"chexplain: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``chexplain`` program; ``argv`` None: the command line (the program tunes glibc's
    allocator for itself first, see :mod:`chexplain.cli.allocator`)."""
    import warnings

    if argv is None:
        from .allocator import retain_freed_memory

        retain_freed_memory()

    old_format, warnings.formatwarning = warnings.formatwarning, _format_warning  # one line each
    try:
        return _run(argv)
    finally:
        warnings.formatwarning = old_format


def _run(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(command if command in GROUPS else None)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "out", None) is not None:
            from ..validate import prepare_out

            prepare_out(args.out)
        return int(args.func(args) or 0)
    except ChexplainError as exc:
        print(f"chexplain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chexplain: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
