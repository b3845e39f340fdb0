"""The main demo, offline, on embedded defaults (``chexplain demo``, ``make demo``):

1. phantom radiographs with known finding masks (a training set and a held-out test set);
2. a DenseNet-121 trained on them (small images, few epochs, random init: no download);
3. per-class AUROC on the test set;
4. ``chexplain explain`` on test images with the LRP presets and Grad-CAM;
5. ``chexplain compare`` against the ground-truth masks (pointing game, relevance mass and
   rank, IoU, AOPC, cascading randomisation) for the LRP presets, Grad-CAM, gradient × input
   and a random map;
6. a small ``chexplain audit`` (SpRAy clusters, region shares, counterfactual) of test images;
7. the quick MNIST reproduction of Bach et al. 2015;
8. everything in one self-contained ``OUT/report.html``.

``quick=True`` is a smoke run (tiny DenseNet, 60 images, one epoch, two methods) for tests.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..evaluate.compare import BENCHMARK_METHODS


@dataclass
class DemoConfig:
    """Options of :func:`run_demo`; the defaults are the full demo (its time on 2 CPU cores: docs/demo.md)."""

    out: str = "runs/demo"
    n_train: int = 600
    n_test: int = 160
    phantom_size: int = 128  # pixels of the generated radiographs (masks too)
    image_size: int = 128  # model input (DenseNet-121's last feature map: 4 x 4)
    arch: str = "densenet121"
    epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-3
    explain_images: int = 3
    explain_methods: Sequence[str] = ("lrp-epsilon", "lrp-alpha1beta0", "lrp-alpha2beta1",
                                      "epsilon-gamma-box", "gradcam")
    compare_methods: Sequence[str] = BENCHMARK_METHODS
    compare_items: int = 48
    patch: int = 8
    steps: int = 16
    randomisation_items: int = 6
    randomisation_steps: int | None = 4  # merged layer groups: classifier … conv0 in 4 steps
    bootstrap: int = 1000
    audit_images: int = 64  # a small SpRAy audit of the first test images (0: none)
    audit_classes: Sequence[str] = ("Pleural Effusion", "Support Devices")
    mnist: bool = True
    mnist_max_iterations: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None  # CPU threads; None: the faster of all cores and fewer, timed now


QUICK = dict(n_train=48, n_test=24, phantom_size=64, image_size=64, arch="tiny", epochs=1,
             explain_images=1, explain_methods=("lrp-epsilon", "gradcam"),
             compare_methods=("lrp-epsilon", "gradcam"), compare_items=8, steps=4,
             randomisation_items=2, randomisation_steps=3, bootstrap=200, mnist_max_iterations=20,
             audit_images=16)


def quick_config(**overrides: Any) -> DemoConfig:
    """The smoke-run configuration (seconds on 2 cores)."""
    return DemoConfig(**{**QUICK, **overrides})


def run_demo(config: DemoConfig | None = None, progress: bool = True,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step of the demo into ``config.out``; returns a summary with ``report``.
    Sets torch's CPU threads for its duration (``config.threads``, or timed: on a machine
    whose cores are partly busy, fewer threads than cores are faster) and restores them."""
    import torch

    from ..errors import ChexplainError

    cfg = config or DemoConfig()
    if cfg.threads is not None and cfg.threads < 1:
        raise ChexplainError(f"demo: --threads must be at least 1, got {cfg.threads}")
    before = torch.get_num_threads()
    try:
        return _run_demo(cfg, progress, say)
    finally:  # the caller's thread setting, whatever the demo chose
        torch.set_num_threads(before)


def _run_demo(cfg: DemoConfig, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    from ..data.chexpert import CheXpertDataset
    from ..data.phantom import write_phantom
    from ..evaluate.auroc import evaluate_checkpoint
    from ..evaluate.compare import CompareConfig, compare, summary_markdown
    from .explain import explain_images
    from ..io import write_json
    from ..models.densenet import load_trained
    from ..report.html import write_report
    from ..studies.chexpert.train import ChexpertTrainConfig, train_chexpert

    out = Path(cfg.out)
    t0 = time.perf_counter()
    est, per_image, threads = expected_seconds(cfg)
    say(f"[demo] expected duration: about {est / 60:.0f} min on this machine now (from a timed "
        f"forward pass: {per_image * 1e3:.0f} ms per {cfg.image_size} px image with {threads} "
        "CPU thread(s); more if the machine gets busier)")
    times: dict[str, float] = {}

    def lap(name: str, start: float) -> None:
        times[name] = round(time.perf_counter() - start, 1)
        say(f"[demo] {name}: {times[name]:.0f} s")

    s = time.perf_counter()
    say(f"[demo] 1/8 phantom radiographs: {cfg.n_train} train + {cfg.n_test} test at {cfg.phantom_size} px")
    train_csv = write_phantom(out / "data" / "phantom_train", cfg.n_train, cfg.phantom_size,
                              seed=cfg.seed, progress=progress)
    test_csv = write_phantom(out / "data" / "phantom_test", cfg.n_test, cfg.phantom_size,
                             seed=cfg.seed + 1, progress=progress, split="test")
    lap("phantom", s)

    s = time.perf_counter()
    run = out / "model"
    say(f"[demo] 2/8 training {cfg.arch} at {cfg.image_size} px for {cfg.epochs} epoch(s) "
        "(random init, no download)")
    train_cfg = ChexpertTrainConfig(csv=str(train_csv), out=str(run), epochs=cfg.epochs,
                                    batch_size=cfg.batch_size, image_size=cfg.image_size, lr=cfg.lr,
                                    arch=cfg.arch, weights="none", device=cfg.device, workers=0,
                                    patience=0, seed=cfg.seed, checkpoint_every=0)
    if (run / "summary.json").is_file() and (run / "best.pt").is_file() and _same_run(run, train_cfg):
        say(f"[demo] reusing the trained model in {run}")
    else:
        _clear_run(run)
        train_chexpert(train_cfg, progress=progress)
    ckpt = run / "best.pt"
    lap("train", s)

    s = time.perf_counter()
    say("[demo] 3/8 AUROC on the held-out phantom test set")
    auroc = evaluate_checkpoint(ckpt, test_csv, out / "auroc", device=cfg.device, progress=progress)
    say(f"[demo] mean AUROC (defined classes): {auroc['mean_auroc']:.3f}")
    lap("auroc", s)

    model, meta = load_trained(ckpt, map_location=cfg.device)
    test = CheXpertDataset(test_csv, masks=True, size=meta["image_size"],
                           normalization=meta["normalization"])
    s = time.perf_counter()
    say(f"[demo] 4/8 explain {cfg.explain_images} test image(s) with {', '.join(cfg.explain_methods)}")
    picks = _explain_picks(test, cfg.explain_images)
    explained = explain_images(model, [test.image_path(i) for i in picks], out / "explain",
                               meta["normalization"], meta["image_size"], meta["observations"],
                               list(cfg.explain_methods), "top3", labels=test_csv,
                               device=cfg.device, progress=progress)
    lap("explain", s)

    s = time.perf_counter()
    say(f"[demo] 5/8 compare {', '.join(cfg.compare_methods)} against the phantom's masks")
    comparison = compare(model, test, out / "compare", meta["observations"], meta["normalization"],
                         CompareConfig(methods=tuple(cfg.compare_methods), patch=cfg.patch,
                                       steps=cfg.steps, max_items=cfg.compare_items,
                                       randomisation_items=cfg.randomisation_items,
                                       randomisation_steps=cfg.randomisation_steps,
                                       bootstrap=cfg.bootstrap, seed=cfg.seed),
                         device=cfg.device, progress=progress)
    say(summary_markdown(comparison, ("pointing_game", "relevance_mass", "aopc_morf")).rstrip())
    lap("compare", s)

    audit = _audit(cfg, ckpt, test_csv, out, say, progress, lap) if cfg.audit_images else None

    mnist = None
    if cfg.mnist:
        s = time.perf_counter()
        say("[demo] 7/8 quick MNIST reproduction of Bach et al. 2015")
        from ..studies.mnist.data import load_mnist
        from ..studies.mnist.reproduce import reproduce

        mnist = reproduce(load_mnist(None), out / "mnist", quick=True,
                          max_iterations=cfg.mnist_max_iterations, device=cfg.device,
                          progress=progress)
        lap("mnist", s)

    say("[demo] 8/8 report")
    figures = []
    for k, rec in enumerate(explained["images"]):  # every layout for the first image, then Fig. 6
        for f in rec["figures"] if k == 0 else [f for f in rec["figures"] if "fig6" in f]:
            figures.append((f"{rec['identity']}: {_FIGURE_NAMES.get(Path(f).stem, Path(f).stem)}", f))
    if explained.get("fig5"):
        figures.append(("Fig. 5: correct vs incorrect predictions per finding", explained["fig5"]))
    figures.append(("ROC curves on the phantom test set", str(out / "auroc" / "roc_curves.png")))
    summary_rows = [
        ("data", f"phantom radiographs: {cfg.n_train} train, {cfg.n_test} test, {cfg.phantom_size} px"),
        ("model", f"{meta['arch']} at {meta['image_size']} px, {cfg.epochs} epoch(s), random init"),
        ("model spec, weights SHA-256", f"{auroc['model']['spec']}, "
                                        f"{auroc['model']['sha256'][:16]}…"),
        ("best epoch", meta.get("epoch")),
        ("explanation methods", ", ".join(cfg.explain_methods)),
        ("compared methods", ", ".join(cfg.compare_methods)),
        ("audit (SpRAy)", "–" if audit is None else audit),
        ("time per step (s)", ", ".join(f"{k} {v:.0f}" for k, v in times.items())),
        ("machine", f"{platform.platform()}, {os.cpu_count()} CPU(s), {threads} thread(s), device {cfg.device}"),
    ]
    report = write_report(out / "report.html", "chexplain demo: LRP and Grad-CAM on phantom radiographs",
                          summary_rows, auroc=auroc, figures=figures, comparison=comparison,
                          comparison_dir=out / "compare", mnist=mnist, mnist_dir=out / "mnist")
    times["total"] = round(time.perf_counter() - t0, 1)
    result = {"config": asdict(cfg), "report": str(report), "seconds": times,
              "mean_auroc": auroc["mean_auroc"], "compare": str(out / "compare" / "compare.json")}
    write_json(out / "demo.json", result)
    return result


def _audit(cfg: DemoConfig, ckpt: Path, test_csv: Path, out: Path, say, progress: bool, lap) -> str:
    """A small ``chexplain audit`` of the first test images; returns the report's summary line."""
    import shutil

    from ..audit import AnalysisConfig, AuditConfig, run_audit

    s = time.perf_counter()
    say(f"[demo] 6/8 audit: SpRAy of {cfg.audit_images} test images for {', '.join(cfg.audit_classes)}")
    shutil.rmtree(out / "audit", ignore_errors=True)  # a new model: a new audit
    result = run_audit(AuditConfig(checkpoint=str(ckpt), out=str(out / "audit"), csv=str(test_csv),
                                   classes=list(cfg.audit_classes), max_images=cfg.audit_images,
                                   device=cfg.device, analysis=AnalysisConfig(population="all")),
                       progress=progress, say=say)
    lap("audit", s)
    flagged = sum(c["flagged"] for r in result["classes"].values() for c in r["clusters"])
    return f"{flagged} flagged cluster(s); {out / 'audit' / 'audit.html'}"


_FIGURE_NAMES = {"fig4_lrp_rules": "Fig. 4, LRP-z, LRP-ε, LRP-αβ and Deep Taylor",
                 "fig6_top3": "Fig. 6, the top-3 findings", "fig7_gradcam_classes": "Fig. 7, Grad-CAM per class",
                 "lrp_vs_gradcam": "LRP beside Grad-CAM"}


def expected_seconds(cfg: DemoConfig) -> tuple[float, float, int]:
    """A rough duration of the demo: its work counted in forward passes per image (training
    ≈ 3 per image and epoch, LRP ≈ 2, each perturbation step 1, each randomisation step ≈ 4
    plus a re-trace of the model per step; the audit ≈ 2 per image and class plus 9 for its
    counterfactual) times one forward timed now (so a busy machine gives a longer estimate).

    With ``cfg.threads`` None (CPU only) the forward is timed with all of torch's threads and
    with fewer, and the faster count is set: OpenMP threads that wait for a busy core slow a
    whole step down (on 2 cores with one busy, 1 thread ran a DenseNet-121 forward 1.5× faster
    than 2). Returns (seconds, seconds per image forward, threads set)."""
    import torch

    from ..models.densenet import chexpert_densenet
    from ..models.memory_format import channels_last

    model, _ = chexpert_densenet(cfg.arch, 14, None)
    model.eval()
    x = channels_last(torch.zeros(8, 3, cfg.image_size, cfg.image_size))  # the layout the steps use
    most = torch.get_num_threads()
    if cfg.threads is not None:
        candidates = [cfg.threads]
    elif cfg.device != "cpu":
        candidates = [most]
    else:
        candidates = sorted({most, max(1, most // 2), 1}, reverse=True)
    timed = {}
    with torch.no_grad():
        for threads in candidates:
            torch.set_num_threads(threads)
            model(x[:2])
            s = time.perf_counter()
            model(x)
            timed[threads] = (time.perf_counter() - s) / 8
    threads = min(timed, key=lambda k: (timed[k], -k))  # ties: the larger count
    torch.set_num_threads(threads)
    per_image = timed[threads]
    m = len(cfg.compare_methods)
    forwards = (cfg.epochs * cfg.n_train * 1.1 * 3 + cfg.n_test
                + cfg.explain_images * (len(cfg.explain_methods) + 5) * 3 * 2
                # per method its map (~2) and 2·(steps − 1) perturbed inputs; the two ends shared
                + cfg.compare_items * (m * 2 * cfg.steps + 2)
                + cfg.randomisation_items * m * (cfg.randomisation_steps or 4) * 4
                + cfg.audit_images * (2 * len(cfg.audit_classes) + 9))  # audit: LRP, 1 + 8 blurred draws
    traces = 2 * ((cfg.randomisation_steps or 4) + 1) + len(cfg.explain_methods) + 5  # compare: LRP + CAM per model
    mnist = 20 if cfg.mnist else 0  # the quick MNIST reproduction, roughly constant
    return forwards * per_image + traces * 100 * per_image + mnist, per_image, threads


def _same_run(run: Path, cfg: Any) -> bool:
    import json

    try:
        old = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return False
    keys = ("epochs", "batch_size", "image_size", "lr", "arch", "seed", "csv")
    return all(old.get(k) == getattr(cfg, k) for k in keys)


def _clear_run(run: Path) -> None:
    for name in ("last.pt", "best.pt", "summary.json", "metrics.jsonl", "config.json"):
        (run / name).unlink(missing_ok=True)


def _explain_picks(test: Any, n: int) -> list[int]:
    """Test images with the most positive findings first (the most to show)."""
    import numpy as np

    counts = (np.asarray(test.targets)[:, 1:] > 0.5).sum(1)  # column 0 is No Finding
    return [int(i) for i in np.argsort(-counts, kind="stable")[:n]]
