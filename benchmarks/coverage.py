"""LRP coverage of the model families: for every family (the real models of
``tests/lrp/families.py``, random weights, randomised BatchNorm/LayerNorm statistics):

- traced: chexplain.LRP traces and canonizes it (else the one-line error);
- logits: max |canonized − original| / max |original| (float64, ``--check-size`` px, batch 2);
- conservation: bias-free version (biases, BN means/shifts, LN shifts, class tokens and
  position encodings zeroed: ``zero_biases``; class tokens kept where the logits would be 0,
  see :func:`conservation`), LRP-ε with ε = 1e-9, float64: max |Σ R − logit| / max |logit|;
- presets: how many of the presets explain with a finite, non-zero map (float32, check size);
- LRP / fwd+bwd: epsilon-plus-flat (one class) against forward + backward to the input, batch
  ``--batch``, ``--size`` px, float32, CPU, median of interleaved rounds;
- Grad-CAM / fwd: chexplain's GradCAM (default layer) against the forward.

    python benchmarks/coverage.py [--families a,b] [--batch 2] [--size 224] [--check-size 64]
                                  [--rounds 3] [--threads 2] [--no-speed] [--clock wall|cpu]

``--zoo timm``: instead of the families, the smallest model of every timm model-entrypoint module
under ``--max-params`` (``benchmarks/_timm_zoo.py``; ``--models a,b`` to check named ones), at
``--check-size`` px (or the model's fixed size), the checks above without speed, and the share
of models that explain (traced, every preset finite), reproduce the logits (≤ 1e-6) and
conserve relevance bias-free (≤ 1e-5). The selection builds every timm model on the meta
device (no weights; a few minutes); nothing is downloaded (pretrained=False).

    python benchmarks/coverage.py --zoo timm --threads 2 [--check-size 64] [--max-params 30e6]

The machine's load changes the absolute times; the ratios are of medians measured side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _timing import allocator_option, apply_allocator, interleaved  # noqa: E402

import chexplain  # noqa: E402
from chexplain.lrp import make_composite  # noqa: E402
from chexplain.lrp.values import forward_values as _forward  # noqa: E402
from tests.lrp.families import ALL as FAMILIES, _tv, build, input_shape, randomize, zero_biases  # noqa: E402

#: the acceptance model of the speed criterion, beside the families' smallest members
FAMILIES.setdefault("resnet50", (_tv("resnet50"), (3, 32), "torchvision"))

BOUNDS = {"low": -3.0, "high": 3.0}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:90]


def checks(name: str, size: int) -> dict:
    c = input_shape(name)[0]
    size = max(size, input_shape(name)[1])
    return model_checks(build(name, small=False), c, size)


def model_checks(model: torch.nn.Module, c: int, size: int) -> dict:
    """traced / logits / presets / conservation of one model (random weights), float64."""
    x = torch.randn(2, c, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    row: dict = {}
    model = model.double()
    try:
        lrp = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-9, stabilizer=1e-9)
        graph = lrp.canonized(x)
    except chexplain.errors.ChexplainError as exc:
        return {"traced": f"no: {_first_line(exc)}"}
    row["traced"] = "yes"
    with torch.no_grad():
        row["logits"] = _rel(_forward(graph, x)[graph.output], model(x))
    finite = 0
    for preset in chexplain.PRESETS:
        lrp.composite = make_composite(preset, **(BOUNDS if preset in ("dtd", "epsilon-gamma-box") else {}))
        R = lrp(x[:1], target="topk:1")
        finite += int(bool(torch.isfinite(R).all()) and float(R.abs().sum()) > 0)
    row["presets"] = f"{finite}/{len(chexplain.PRESETS)}"
    row.update(conservation(model, x))
    return row


def conservation(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """max |Σ R − logit| / max |logit| of the bias-free model (in place), LRP-ε, ε = 1e-9.

    A model whose bias-free logits are 0 because they are read from a class token that only
    itself reaches (CoaT: a zero token stays zero through factorised attention, q = 0) keeps
    its class tokens; they are constants concatenated to the tokens, so the relevance that
    reaches them is absorbed by the concatenation, and the sum checked is Σ R of the input plus
    what the concatenations absorbed (an exact index rule otherwise), every other rule still
    checked."""
    tokens = {n: p.detach().clone() for n, p in model.named_parameters() if "token" in n.rsplit(".", 1)[-1]}
    zero_biases(model)
    with torch.no_grad():  # logits of order one (GoogLeNet/Inception without biases: ~1e-5)
        top = float(model(x).abs().max())
    row: dict = {}
    if top == 0 and tokens:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in tokens:
                    p.copy_(tokens[n])
            top = float(model(x).abs().max())
        row["note"] = "class tokens kept: their relevance (absorbed by the concatenation) counted"
    if top == 0:
        return {"conservation": float("nan"), "note": "bias-free logits are 0"}
    x = x / top if top < 1e-2 else x
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-9, stabilizer=1e-9).explain(
        x, target="topk:1", report="note" in row)
    total = res.relevance.flatten(2).sum(-1)
    if res.report is not None:
        total = total + sum((r.absorbed for r in res.report.layers
                              if r.kind == "index" and "cat" in r.rule), torch.zeros_like(total))
    row["conservation"] = _rel(total, res.logits.gather(1, res.targets))
    return row


def speed(name: str, batch: int, size: int, rounds: int, clock: str = "wall") -> dict:
    c = input_shape(name)[0]
    size = max(size, input_shape(name)[1])
    model = build(name, small=False).float().eval()
    x = torch.randn(batch, c, size, size, generator=torch.Generator().manual_seed(0))
    lrp = chexplain.LRP(model, "epsilon-plus-flat")
    cam = chexplain.GradCAM(model)
    target = model(x).argmax(1).detach()

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xg).gather(1, target[:, None]).sum(), xg)

    cases = {"forward": forward, "forward+backward": forward_backward, "lrp": lambda: lrp(x, target=target),
             "gradcam": lambda: cam(x, target=target)}
    t = interleaved(cases, rounds=rounds, verbose=False, clock=clock)
    return {"lrp/fb": t["lrp"] / t["forward+backward"], "cam/fwd": t["gradcam"] / t["forward"],
            "fb_s": t["forward+backward"], "lrp_s": t["lrp"], "cam_layer": cam.layer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--check-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time by wall clock (default) or by process CPU time (use with --threads 1 "
                             "on a shared machine)")
    parser.add_argument("--zoo", choices=("timm",), help="check the timm zoo instead of the families")
    parser.add_argument("--models", help="with --zoo: these timm models instead of the selection")
    parser.add_argument("--max-params", type=float, default=30e6)
    allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(parser, args)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.zoo:
        return zoo(args)
    head = ("| family | group | traced | logits (rel.) | bias-free conservation (rel.) | presets finite | "
            "LRP ε+♭ / fwd+bwd | Grad-CAM / fwd | fwd+bwd s | Grad-CAM layer |")
    print(f"batch {args.batch}, {args.size} px (speed, float32, {args.threads} threads, {args.clock} clock, "
          f"{args.allocator} allocator); checks at "
          f"{args.check_size} px, float64")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name in args.families.split(","):
        row = checks(name, args.check_size)
        if row["traced"] == "yes" and not args.no_speed:
            row.update(speed(name, args.batch, args.size, args.rounds, args.clock))
        cells = [name, FAMILIES[name][2], row["traced"]]
        if row["traced"] == "yes":
            cells += [f"{row['logits']:.1e}", f"{row['conservation']:.1e}", row["presets"]]
            if "lrp/fb" in row:
                cells += [f"{row['lrp/fb']:.2f}", f"{row['cam/fwd']:.2f}", f"{row['fb_s']:.3f}", str(row["cam_layer"])]
            else:
                cells += ["", "", "", ""]
        else:
            cells += [""] * 7
        print("| " + " | ".join(cells) + " |", flush=True)


def zoo(args: argparse.Namespace) -> None:
    import _timm_zoo
    if args.models:
        chosen = [_timm_zoo.ZooModel("", n, 0) for n in args.models.split(",")]
    else:
        chosen = _timm_zoo.select(args.max_params)
        print(f"{len(chosen)} timm entrypoint modules with a model under {args.max_params / 1e6:.0f} M parameters: "
              + ",".join(z.name for z in chosen), flush=True)
    head = "| model | module | M params | px | explains | logits (rel.) | bias-free conservation (rel.) | s |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    ok = {"explains": 0, "logits": 0, "conservation": 0}
    refused, skipped = [], []
    for z in chosen:
        start = time.perf_counter()
        try:
            model, size = _timm_zoo.build(z.name, args.check_size)
            model = randomize(model, calibrate=(3, size)).eval()
        except Exception as exc:  # noqa: BLE001 - timm cannot build or run it: not counted against chexplain
            print(f"| {z.name} | {z.module} | | | timm cannot run it: {_first_line(exc)} | | | |", flush=True)
            skipped.append(z.name)
            continue
        params = sum(p.numel() for p in model.parameters()) / 1e6
        try:
            row = model_checks(model, 3, size)
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of chexplain, reported as such
            row = {"traced": f"crash: {type(exc).__name__}: {_first_line(exc)}"}
        explains = row["traced"] == "yes" and row["presets"].split("/")[0] == row["presets"].split("/")[1]
        logits_ok = explains and row["logits"] <= 1e-6
        cons_ok = explains and row["conservation"] <= 1e-5
        ok["explains"] += explains
        ok["logits"] += logits_ok
        ok["conservation"] += cons_ok
        if not (explains and logits_ok and cons_ok):
            refused.append(f"{z.name}: {row['traced'] if row['traced'] != 'yes' else row}")
        cells = [z.name, z.module, f"{params:.1f}", str(size),
                 "yes" if explains else row["traced"] if row["traced"] != "yes" else f"presets {row['presets']}"]
        cells += [f"{row['logits']:.1e}", f"{row['conservation']:.1e}"] if "logits" in row else ["", ""]
        print("| " + " | ".join(cells + [f"{time.perf_counter() - start:.0f}"]) + " |", flush=True)
    total = len(chosen) - len(skipped)
    if skipped:
        print(f"\nnot counted (timm cannot run them): {', '.join(skipped)}")
    print(f"\n{total} models: " + ", ".join(f"{k} {v}/{total} ({100 * v / max(total, 1):.0f} %)"
                                            for k, v in ok.items()))
    for line in refused:
        print(f"- {line}")


if __name__ == "__main__":
    main()
