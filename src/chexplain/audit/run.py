"""``run_audit``: checkpoint + data → store → SpRAy per class → report (``chexplain audit``).

Layout of ``out``: ``store/`` (:mod:`chexplain.audit.store`), ``audit.json``,
``clusters.csv``, ``members.csv``, ``figures/`` and ``audit.html``
(:mod:`chexplain.audit.report`). Under ``torchrun`` every rank explains its shards and rank 0
alone writes the index and the report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ChexplainError
from .analysis import POPULATIONS, AnalysisConfig, audit_class
from .explain import MapMaker, explain_dataset, write_index
from .store import ShardPlan, ShardStore

if TYPE_CHECKING:  # pragma: no cover
    from ..zoo import LoadedModel


@dataclass
class AuditConfig:
    """Options of one audit (CLI: ``chexplain audit``)."""

    checkpoint: str  #: the model spec (see :func:`chexplain.load_model`)
    out: str
    csv: str | None = None
    data: str | None = None
    images: str | None = None
    nih: str | None = None
    classes: Sequence[str] | str | None = None  #: None: the classes with positives (all without labels)
    method: str = "epsilon-plus-flat"
    method_params: dict[str, Any] = field(default_factory=dict)  #: the method's parameters
    max_images: int | None = None
    device: str = "cpu"
    batch_size: int = 16
    workers: int = 0
    shard_size: int = 256
    full: bool = False  #: keep the input-resolution maps (float16) too
    resume: bool = False  #: continue the store in ``out`` (same fingerprint only)
    lung_masks: str | None = None
    finding_masks: str | None = None  #: <DIR>/<image>.png, or <DIR>/<class>/<image>.png per class
    model_options: dict[str, Any] = field(default_factory=dict)  #: load_model's other arguments
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def check(self) -> None:
        for name in ("batch_size", "shard_size"):
            if int(getattr(self, name)) < 1:
                raise ChexplainError(f"--{name.replace('_', '-')} must be at least 1")
        if self.workers < 0:
            raise ChexplainError("--workers must be >= 0")
        d = self.analysis.distinct
        for name in ("threshold", "evidence_overlap"):
            if not 0 < float(getattr(d, name)) <= 1:
                raise ChexplainError(f"--{name.replace('_', '-')} {getattr(d, name)} must lie in (0, 1]")
        if d.evidence_margin < 0 or d.merge_margin < 0:
            raise ChexplainError("the evidence and merge margins must be >= 0")
        if self.analysis.population not in POPULATIONS:
            raise ChexplainError(f"unknown --population {self.analysis.population!r}; choose "
                                 f"from {', '.join(POPULATIONS)}")
        from ..registry import all_methods

        if self.method not in all_methods() or self.method == "random":
            raise ChexplainError(f"unknown --method {self.method!r}; choose from "
                                 f"{', '.join(m for m in all_methods() if m != 'random')}")
        from ..registry import check_method_params

        check_method_params(self.method, dict(self.method_params))
        self.analysis.spray.check()
        self.analysis.counterfactual.check()
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ChexplainError(f"--out {out}: exists and is not a folder")
        from ..validate import check_layout

        check_layout(out, folders=("store", "figures"),
                     files=("audit.json", "clusters.csv", "members.csv", "audit.html",
                            "store/store.json", "store/index.csv"))


def _classes(spec, names: Sequence[str], labels_all: np.ndarray | None) -> list[str]:
    if spec is None:
        if labels_all is None or np.isnan(labels_all).all():
            return list(names)
        found = [n for k, n in enumerate(names) if np.nansum(labels_all[:, k] == 1) > 0]
        if not found:
            raise ChexplainError("no class has a labelled positive among the audited images; "
                                 "name the classes with --classes")
        return found
    items = [c.strip() for c in spec.split(",")] if isinstance(spec, str) else list(spec)
    lower = {n.lower(): n for n in names}
    bad = [c for c in items if c.lower() not in lower]
    if bad or not items:
        raise ChexplainError(f"unknown class {bad[0] if bad else ''!r}; the model's outputs are "
                             f"{', '.join(names)}")
    return list(dict.fromkeys(lower[c.lower()] for c in items))


def run_fingerprint(config: AuditConfig, source, classes: Sequence[str], model: LoadedModel,
                    device: torch.device) -> dict[str, Any]:
    """What makes a resumed run the same run: the inputs (the model's spec, weights' digest,
    output names and preprocessing; the data's digest, source, classes, method,
    ``max_images``), what is stored (``full``)
    and what changes the floats of the maps: the batch size, the device type, the torch
    version and torch's intra-op thread count (a reduction split over another number of
    threads sums in another order, so the maps differ in the last bits)."""
    from ..evaluate.baselines import params_record

    return {"checkpoint": model.sha256, "model": model.identity, "data": source.digest,
            "source": source.kind, "classes": list(classes), "method": config.method,
            "image_size": int(model.image_size), "normalization": model.identity["normalization"],
            "batch_size": int(config.batch_size), "full": bool(config.full),
            "max_images": config.max_images, "device": device.type,
            "threads": int(torch.get_num_threads()), "torch": torch.__version__.split("+")[0],
            **({"method_params": params_record({config.method: config.method_params})}
               if config.method_params else {})}


def run_audit(config: AuditConfig, progress: bool = True, say: Callable[[str], None] = print,
              on_shard: Callable[[int], None] | None = None) -> dict[str, Any] | None:
    """Run the audit; returns ``audit.json``'s content on rank 0 (None on the other ranks)."""
    from ..train import distributed as D
    from ..zoo import load_model
    from .sources import open_source

    t0 = time.perf_counter()  # the total is the run's wall time
    config.check()
    env, device = D.init_distributed(config.device)
    try:
        say = say if env.is_main else (lambda *a, **k: None)
        loaded = load_model(config.checkpoint, device=device, **config.model_options)
        for note in loaded.notes:
            say(f"note: {note}")
        model = loaded.module
        names = list(loaded.names)
        norm = loaded.normalization
        pre = loaded.preprocess
        everything = open_source(names, pre, config.csv, config.data, config.images, config.nih,
                                 config.max_images, warn_missing=False, exclude=config.out)
        classes = _classes(config.classes, names, everything.labels)
        source = open_source(classes, pre, config.csv, config.data, config.images, config.nih,
                             config.max_images, exclude=config.out)
        idx = [names.index(c) for c in classes]
        store = ShardStore(Path(config.out) / "store")
        plan = ShardPlan(len(source.keys), int(config.shard_size))
        fingerprint = run_fingerprint(config, source, classes, loaded, device)
        if env.is_main:
            store.open(fingerprint, plan, resume=config.resume)
        else:
            store.attach(fingerprint, plan)
        if env.distributed:
            torch.distributed.barrier()
        maker = MapMaker(model, config.method, idx, norm, **config.method_params)
        done = explain_dataset(maker, source, store, plan, norm, device, config.batch_size,
                               config.workers, config.full, env.rank, env.world_size, progress,
                               on_shard)
        D.shutdown(env, together=True)  # the analysis below is rank 0's alone
        if not env.is_main:
            return None
        say(f"explained {done.images} image(s) for {len(classes)} class(es) with {config.method} "
            f"at {done.images_per_second:.1f} images/s (this rank)")
        write_index(store, plan, source, classes)
        return _analyse(config, model, source, store, plan, classes, idx, fingerprint, say,
                        _Clock(t0, time.perf_counter()), loaded.record())
    finally:
        D.shutdown(env)


@dataclass
class _Clock:
    """When the run started and when its explain phase ended (``time.perf_counter``)."""

    start: float
    explained: float


def _analyse(config, model, source, store, plan, classes, idx, fingerprint, say, clock: _Clock,
             record: dict[str, Any]):
    from torch.utils.data import default_collate

    from .sources import age_bins
    from .arrays import StoreArrays
    from .regions import finding_masks, read_mask_folder
    from .report import write_outputs

    data = StoreArrays(store, plan)  # read per class and block, never the whole store
    device = next(model.parameters()).device
    lungs = read_mask_folder(config.lung_masks, source.keys) if config.lung_masks else None

    def load_images(positions: np.ndarray) -> torch.Tensor:
        items = [source.dataset[int(p)] for p in positions]
        return default_collate(items)["image"].to(device)

    audits = []
    for t, (name, cls) in enumerate(zip(classes, idx)):
        findings = finding_masks(config.finding_masks, name, source.keys) \
            if config.finding_masks else None
        a = audit_class(name, t, data, source.labels, source.meta, source.keys, config.analysis,
                        load_images, model, cls, lungs, findings)
        audits.append(a)
        flagged = [s for s in a.strategies if s["flagged"]]
        distinct = [s for s in a.strategies if s["verdict"] == "distinct strategy"]
        k = a.spray.n_clusters if a.spray is not None else 0
        say(f"{name}: {len(a.positions)} images ({a.population}), {k} cluster(s), "
            f"{len(flagged)} flagged strateg{'y' if len(flagged) == 1 else 'ies'}, "
            f"{len(distinct)} distinct (no finding mask to judge by)" + (f"; {a.note}" if a.note else ""))
        for s in flagged + distinct:
            say(f"  {s['sentence']}")
    factors = {}
    for col in source.meta.columns:
        v = age_bins(source.meta[col]) if col == "Age" else source.meta[col].astype(str)
        factors[col] = np.asarray(v, dtype=str)
    summary = {"checkpoint": str(config.checkpoint), "images": plan.n_images,
               "classes": ", ".join(classes), "method": config.method,
               "source": source.kind, "checkpoint sha256": fingerprint["checkpoint"][:16],
               "model": record["spec"], "weights sha256": record["sha256"],
               "preprocessing": f"{record['image_size']} px, {record['channels']} channel(s), "
                                f"normalisation {record['normalization']}",
               "spray": str(asdict(config.analysis.spray)),
               "counterfactual": str(asdict(config.analysis.counterfactual)),
               "suspect rule": "every cluster's distinctive region (where its prototype exceeds "
                               "the other clusters') is tested, each member's finding pixels "
                               "kept; a region on the findings is then compared with images "
                               "whose finding covers the same cells; flagged: used; distinct "
                               "strategy: used, no finding mask known",
               "distinctive region": str(asdict(config.analysis.distinct)),
               "strategies": "flagged (distinct) clusters united where their regions coincide"
               if config.analysis.strategies else "one per cluster"}
    out = Path(config.out)
    analysed = time.perf_counter()
    result = write_outputs(out, audits, {c: t for t, c in enumerate(classes)}, source.keys,
                           summary, factors, source.labels)
    end = time.perf_counter()
    say(f"audit of {plan.n_images} image(s) in {end - clock.start:.0f} s (explain "
        f"{clock.explained - clock.start:.0f} s, analysis {analysed - clock.explained:.0f} s, "
        f"report {end - analysed:.0f} s): {out / 'audit.html'}")
    return result
