"""Reproduction of Bach et al. 2015 (PLoS ONE e0130140), MNIST experiments I and II, end to end.

Trains each experiment's network into ``OUT/<experiment>/`` (reusing a finished ``model.pt``
of the same data and iteration count, resuming an interrupted run), draws figures (a), (b)
and (c) into ``OUT/figures/`` and writes ``OUT/results.json`` and ``OUT/results.md`` with our
accuracies beside the study's. ``quick=True`` runs a few iterations only, labelled as such.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from .data import MnistData
from ...errors import ChexplainError
from ...io import write_json, write_text
from .experiments import EXPERIMENTS, get_experiment
from .model import load_mnist_mlp
from .train import TrainConfig, resolve_device, train_mnist

# a smoke run that finishes in about a minute on two CPU cores (not the study's accuracies)
QUICK_ITERATIONS = {"1": 3000, "2-tanh": 600, "2-relu": 600, "2-relu-short": 250}
PAIR_NETS = ("2-tanh", "2-relu", "2-relu-short")  # figure (b)'s rows, as in the study


def _reusable(out: Path, iterations: int, data: MnistData) -> bool:
    path = out / "metrics.json"
    if not (out / "model.pt").is_file() or not path.is_file():
        return False
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return m.get("iterations") == iterations and m.get("data_source") == data.source


def results_table(rows: Sequence[dict[str, Any]], quick: bool, source: str) -> str:
    """Markdown table of our test accuracies beside the study's."""
    lines = [
        "# Bach et al. 2015, MNIST experiments I and II: our reproduction",
        "",
        f"Data: {source}." + (" **Quick smoke run: far fewer iterations than the study; accuracies are not "
                              "comparable.**" if quick else ""),
        "",
        "| experiment | net | iterations (ours) | iterations (study) | test accuracy (ours) | test accuracy (study) "
        "| train time (s) | device |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for m in rows:
        lines.append(
            f"| {m['experiment']} | {m['net']} | {m['iterations']:,} | {m['paper_iterations']:,} | "
            f"{m['test_accuracy']:.2%} | {m['paper_accuracy']:.2%} | {m['train_seconds']:.0f} | {m['device']} |"
        )
    short = [f"{m['experiment']} ({m['iterations']:,} of {m['paper_iterations']:,})" for m in rows
             if m["iterations"] != m["paper_iterations"]]
    if short and not quick:
        lines += ["", f"**Iterations differ from the study's for: {', '.join(short)}.**"]
    lines += ["", "Study: Bach et al., PLoS ONE 10(7): e0130140 (2015). Optimiser, learning rate and seed: "
              "see each experiment's metrics.json."]
    return "\n".join(lines) + "\n"


def reproduce(
    data: MnistData,
    out_dir: str | os.PathLike,
    quick: bool = False,
    max_iterations: int | None = None,
    experiments: Sequence[str] = tuple(EXPERIMENTS),
    iterations: Mapping[str, int] | None = None,
    device: str = "cpu",
    method: str = "lrp-epsilon",
    digits: Sequence[int] = (2, 7),
    seed: int = 0,
    cmap: str = "study",
    progress: bool = True,
    **params: Any,
) -> dict[str, Any]:
    """Train what is needed, write every figure, ``results.json`` and ``results.md``.

    Each experiment trains for the study's iterations, or ``QUICK_ITERATIONS`` when ``quick``,
    overridden per experiment by ``iterations`` ({"2-relu": 30000}), capped by ``max_iterations``.
    """
    from .figures import make_figures

    out = Path(out_dir)
    names = [get_experiment(e).name for e in experiments]
    if not names:
        raise ChexplainError("no experiment to reproduce")
    if max_iterations is not None and max_iterations < 1:
        raise ChexplainError("--max-iterations must be positive")
    overrides = {get_experiment(k).name: int(v) for k, v in (iterations or {}).items()}
    if any(v < 1 for v in overrides.values()):
        raise ChexplainError("iteration counts must be positive")
    dev = resolve_device(device)
    t0 = time.perf_counter()
    rows, models = [], {}
    for name in names:
        exp = EXPERIMENTS[name]
        n_iter = overrides.get(name, QUICK_ITERATIONS[name] if quick else exp.iterations)
        if max_iterations is not None:
            n_iter = min(n_iter, max_iterations)
        run_dir = out / f"exp{name}"
        if _reusable(run_dir, n_iter, data):
            print(f"experiment {name}: reusing {run_dir / 'model.pt'}")
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            config = TrainConfig(experiment=name, iterations=n_iter, seed=seed, device=str(dev))
            metrics = train_mnist(config, data, run_dir, resume=True, progress=progress,
                                  label=f"experiment {name} ({exp.label})")
            print(f"experiment {name} ({exp.label}): test accuracy {metrics['test_accuracy']:.2%} "
                  f"(study {exp.paper_accuracy:.2%}), {metrics['train_seconds']:.0f} s")
        rows.append(metrics)
        model, meta = load_mnist_mlp(run_dir / "model.pt", map_location=dev)
        models[f"exp{name}"] = (model.to(dev), meta)

    pair = [f"exp{n}" for n in PAIR_NETS if n in names] or None
    figures = make_figures(models, data, out / "figures", method=method, digits=digits, seed=seed, cmap=cmap,
                           pair_models=pair, **params)
    # figure (b)'s rows are named by the study's net labels
    table = results_table(rows, quick, data.source)
    results = {
        "study": "Bach et al. 2015, PLoS ONE 10(7): e0130140, MNIST experiments I and II",
        "quick": quick,
        "max_iterations": max_iterations,
        "iterations": overrides,
        "data_source": data.source,
        "method": method,
        "method_params": params,
        "experiments": rows,
        "figures": [str(p.relative_to(out)) for p in figures],
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "results.json", results)
    write_text(out / "results.md", table)
    return {**results, "table": table}
