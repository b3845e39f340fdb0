"""The model options every command shares: ``--model SPEC`` (``--checkpoint`` is its alias) and
what goes with a spec (see :func:`chexplain.load_model`)."""

from __future__ import annotations

import argparse
from typing import Any

SPEC_HELP = ("the model: a chexplain checkpoint (best.pt), xrv:WEIGHTS (e.g. "
             "xrv:densenet121-res224-all), timm:NAME or torchvision:NAME with --weights, "
             "FILE.py:FACTORY or package.module:FACTORY")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model`` and its companions on the parser ``p``."""
    p.add_argument("--model", "--checkpoint", dest="model", required=True, metavar="SPEC",
                   help=SPEC_HELP)
    p.add_argument("--weights", metavar="FILE", help="the spec's weights: a state dict or the "
                   "library's checkpoint (xrv: default TorchXRayVision's cache)")
    p.add_argument("--class-names", metavar="NAMES|FILE", help="the model's output names, "
                   "comma-separated or a file with one a line (default: the spec's own; the 14 "
                   "CheXpert observations for a 14-output model)")
    p.add_argument("--output", metavar="KEY|INDEX", help="the logits in a model returning a "
                   "tuple, dict or object (default: .logits, key 'logits' or element 0)")
    p.add_argument("--image-size", type=int, metavar="PX", help="model input side (default: "
                   "the spec's)")
    p.add_argument("--normalization", metavar="NAME|MEAN/STD", help="imagenet, xrv or comma "
                   "lists MEAN/STD (default: the spec's)")
    p.add_argument("--channels", type=int, metavar="C", help="input channels (default: the "
                   "spec's)")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`chexplain.load_model` besides the spec and device."""
    output = args.output
    if output is not None and output.lstrip("-").isdigit():
        output = int(output)
    return {"weights": args.weights, "names": args.class_names, "output": output,
            "image_size": args.image_size, "normalization": args.normalization,
            "channels": args.channels}


def load_from_args(args: argparse.Namespace, device: Any = "cpu"):
    """The :class:`~chexplain.zoo.LoadedModel` of the command line's ``--model`` options; its
    notes (choices made for the user) go to stderr."""
    import sys

    from ..zoo import load_model

    model = load_model(args.model, device=device, **model_options(args))
    for note in model.notes:
        print(f"chexplain: note: {note}", file=sys.stderr)
    return model
