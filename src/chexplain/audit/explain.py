"""Explaining a whole data set into the shard store (:mod:`chexplain.audit.store`).

Images come through a :class:`~torch.utils.data.DataLoader` (worker processes decode while
the model explains), one relevance pass per batch carries every chosen class (LRP presets:
:class:`chexplain.LRP`; other methods of ``explain``: :class:`~chexplain.evaluate.baselines.
Attributor`), and each complete shard is written atomically. Maps are summed over colour
channels and sum-pooled to 32 × 32 and 64 × 64 (the pooled map keeps the map's total
relevance exactly); with ``full=True`` the input-resolution maps are kept too (float16).
Under ``torchrun`` rank r explains shards r, r+N, …; :func:`explain_dataset` returns after
every rank has finished, and rank 0 writes the index.

What keeps the data path off the critical path (profiled with cProfile on a tiny DenseNet at
64 px, where LRP is cheapest and everything else weighs most): with ``workers=0`` a
background thread decodes the next batch while the model explains this one (PIL's decoding
and torch release the GIL; no worker processes to start per call), and shards are compressed
and written by a background thread while the next shard is explained (zlib releases the
GIL); ``on_shard`` still runs in shard order, after the shard is on disk.
"""

from __future__ import annotations

import inspect
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.images import Normalization
from ..errors import ChexplainError
from ..io import write_csv
from .pooling import sum_pool
from .sources import MAP_SIZE, AuditSource, age_bins
from .store import ShardPlan, ShardStore

COARSE = 32  #: side of the maps SpRAy clusters


class MapMaker:
    """``self(x) -> (maps (N, T, H, W), logits (N, T))`` for one method and the chosen classes."""

    def __init__(self, model: torch.nn.Module, method: str, classes: Sequence[int],
                 normalization: Normalization, **params: Any) -> None:
        from ..lrp.composites import PRESETS
        from ..registry import family

        self.classes = [int(c) for c in classes]
        self.model = model
        if family(method) == "lrp":  # one relevance pass gives the logits too
            from ..lrp.engine import LRP

            if "low" in inspect.signature(PRESETS[method]).parameters and "low" not in params:
                low, high = normalization.bounds()
                params = dict(params, low=torch.tensor(low), high=torch.tensor(high))
            self._lrp = LRP(model, composite=method, **params)
            self._other = None
        else:
            from ..evaluate.baselines import Attributor

            self._lrp = None
            self._other = Attributor(model, method, normalization, **params)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._lrp is not None:
            e = self._lrp.explain(x, classes=self.classes)
            maps = e.relevance.sum(2) if e.relevance.ndim == 5 else e.relevance.sum(1)[:, None]
            return maps, e.logits[:, self.classes]
        maps = self._other(x, classes=self.classes)
        with torch.no_grad():
            logits = self.model(x)[:, self.classes]
        return maps, logits


@dataclass
class ExplainResult:
    """What :func:`explain_dataset` did on this rank."""

    images: int  #: explained here in this call (0 for a complete store)
    seconds: float
    shards_written: list[int]

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _shard_arrays(parts: list[dict[str, torch.Tensor]], full: bool) -> dict[str, np.ndarray]:
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    out = {"positions": cat["position"].numpy().astype(np.int64),
           "logits": cat["logits"].numpy().astype(np.float32),
           "maps32": cat["maps32"].numpy(), "maps64": cat["maps64"].numpy(),
           "image64": cat["image64"].numpy().astype(np.float32),
           "finding64": cat["finding"].numpy().astype(bool),
           "has_finding": cat["has_finding"].numpy().astype(bool)}
    if full:
        out["full"] = cat["full"].numpy().astype(np.float16)
    return out


def _prefetched(loader: DataLoader, depth: int = 2):
    """The loader's batches, produced by a background thread ``depth`` batches ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in loader:
                if stop.is_set():
                    return
                q.put(("item", b))
            q.put(("end", None))
        except BaseException as exc:  # re-raised in the consumer
            q.put(("error", exc))

    worker = threading.Thread(target=produce, name="audit-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def explain_dataset(maker: MapMaker, source: AuditSource, store: ShardStore, plan: ShardPlan,
                    normalization: Normalization, device: torch.device, batch_size: int = 16,
                    workers: int = 0, full: bool = False, rank: int = 0, world_size: int = 1,
                    progress: bool = True,
                    on_shard: Callable[[int], None] | None = None) -> ExplainResult:
    """Explain the shards of this rank that the store lacks; see the module doc.

    ``on_shard(k)`` is called after shard k is written (tests stop a run there)."""
    from tqdm.auto import tqdm

    done = store.done(plan)
    todo = [k for k in plan.for_rank(rank, world_size) if k not in done]
    batches = [list(plan.positions(k))[i:i + batch_size] for k in todo
               for i in range(0, len(plan.positions(k)), batch_size)]
    owner = [k for k in todo for _ in range(0, len(plan.positions(k)), batch_size)]
    loader = DataLoader(source.dataset, batch_sampler=batches, num_workers=workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
    bar = tqdm(total=sum(len(b) for b in batches), desc=f"explain (rank {rank})" if world_size > 1
               else "explain", unit="img", disable=not progress)
    t0, written = time.perf_counter(), []
    pending: list[tuple[int, Future]] = []
    writer = ThreadPoolExecutor(1, thread_name_prefix="audit-shard")

    def finish(block: bool) -> None:
        while pending and (block or pending[0][1].done()):
            k_done, fut = pending.pop(0)
            fut.result()  # a failed write raises here
            written.append(k_done)
            if on_shard is not None:
                on_shard(k_done)

    batches_in = loader if workers else _prefetched(loader)
    shards = ShardParts(plan, full)
    try:
        for k, batch in zip(owner, batches_in):
            rec = batch_record(maker, batch, normalization, device, full, k)
            bar.update(len(rec["position"]))
            bar.set_postfix_str(f"{bar.n / max(time.perf_counter() - t0, 1e-9):.1f} img/s")
            arrays = shards.add(k, rec)
            if arrays is not None:
                pending.append((k, writer.submit(store.write_shard, k, arrays)))
            finish(False)
        finish(True)
    finally:
        writer.shutdown(wait=True)
        if hasattr(batches_in, "close"):
            batches_in.close()
    bar.close()
    n = sum(len(plan.positions(k)) for k in written)
    return ExplainResult(n, time.perf_counter() - t0, written)


def batch_record(maker: MapMaker, batch: dict[str, torch.Tensor], normalization: Normalization,
                 device: torch.device, full: bool, shard: int) -> dict[str, torch.Tensor]:
    """One batch's row of a shard: positions, logits, the maps pooled to 32² and 64² (and in
    half precision at full size with ``full``), the image at 64² and its finding masks."""
    x = batch["image"].to(device, non_blocking=True)
    maps, logits = maker(x)
    if not torch.isfinite(maps).all():
        raise ChexplainError(f"non-finite relevance in shard {shard} (images "
                             f"{int(batch['position'][0])}…); try another --method")
    grey = normalization.invert(x)[:, None]
    rec = {"position": batch["position"], "logits": logits.float().cpu(),
           "maps32": sum_pool(maps, COARSE).cpu(), "maps64": sum_pool(maps, MAP_SIZE).cpu(),
           "image64": F.interpolate(grey.float(), size=(MAP_SIZE, MAP_SIZE), mode="area")[:, 0].cpu(),
           "finding": batch["finding"], "has_finding": batch["has_finding"]}
    if full:
        rec["full"] = maps.half().cpu()
    return rec


@dataclass
class ShardParts:
    """The batch records of the shard being assembled; :meth:`add` returns its arrays once
    the shard is complete."""

    plan: ShardPlan
    full: bool
    parts: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def add(self, shard: int, rec: dict[str, torch.Tensor]) -> dict[str, np.ndarray] | None:
        self.parts.append(rec)
        if sum(len(p["position"]) for p in self.parts) < len(self.plan.positions(shard)):
            return None
        arrays = _shard_arrays(self.parts, self.full)
        self.parts = []
        return arrays


def write_index(store: ShardStore, plan: ShardPlan, source: AuditSource,
                class_names: Sequence[str]) -> Path:
    """``store/index.csv``: one row per image and class, in position then class order, with
    the image's metadata (Sex, Age, its ``Age bin``, AP/PA, Site / Institution when known).
    Rows are made while they are written (one row list never holds the whole data set)."""
    data = store.read(plan, ["positions", "logits"])
    pos, logits = data["positions"], data["logits"].astype(np.float64)
    if not np.array_equal(pos, np.arange(plan.n_images)):
        raise ChexplainError(f"{store.folder}: the shards do not cover the images in order")
    prob = 1.0 / (1.0 + np.exp(-logits))
    meta = source.meta.copy()
    if "Age" in meta:
        meta.insert(list(meta.columns).index("Age") + 1, "Age bin",
                    age_bins(meta["Age"]).replace("nan", ""))
    meta_cols = list(meta.columns)
    values = [["" if pd.isna(v) else v for v in meta[c]] for c in meta_cols]

    def rows():
        for i in range(plan.n_images):
            shard, row = divmod(i, plan.shard_size)
            extra = [v[i] for v in values]
            for t, name in enumerate(class_names):
                lab = source.labels[i, t]
                yield [source.keys[i], name, f"{logits[i, t]:.6g}", f"{prob[i, t]:.6g}",
                       "" if np.isnan(lab) else int(lab), shard, row, *extra]

    header = ["image", "class", "logit", "probability", "label", "shard", "row", *meta_cols]
    return write_csv(store.folder / "index.csv", rows(), header)
