"""Training a multi-label DenseNet-121 on CheXpert-format data (one CPU to many GPUs).

``train_chexpert(config)`` trains with BCE-with-logits under the loss mask of the uncertainty
policy (U-Ignore's uncertain labels do not count), Adam (the study: batch 16, 224 px, lr 1e-4),
a per-step cosine schedule (or reduce-on-plateau of the validation mean AUROC, or constant),
and early stopping on the validation mean AUROC. On CUDA it uses autocast (bf16, or fp16 with
a GradScaler) and channels-last tensors; images load in worker processes. For scale: on one
H100, DenseNet-121 at 224 px, batch 64, fp32 channels-last trains at about 1,350 images/s (a
CheXpert epoch of 191k frontal images in under 2.5 minutes, if the loader keeps up).

Under ``torchrun --nproc_per_node N`` the same call trains with DistributedDataParallel (NCCL
on GPUs, gloo on CPU): each process reads its shard of every epoch's seeded permutation
(``--batch-size`` is per process), validation predictions are gathered on every rank, and
rank 0 alone writes files. Outputs in ``out``:

- ``metrics.jsonl``: one line per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``auroc``
  (per observation; null when undefined), ``mean_auroc``, ``images_per_second`` and more;
- ``best.pt`` (best validation mean AUROC) and ``last.pt`` (full state: model, optimiser,
  scheduler, scaler, random generators, position in the epoch), both atomic and loadable with
  ``weights_only=True``; ``last.pt`` is also written every ``checkpoint_every`` steps and on
  Ctrl-C / SIGTERM, and ``resume=True`` continues from it exactly;
- ``config.json`` (options and run facts) and ``summary.json`` at the end.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ...data.chexpert import OBSERVATIONS, policy_name
from ...errors import ChexplainError
from ...evaluate.auroc import per_class_auroc
from ...io import write_json, write_text
from ...models.densenet import chexpert_densenet, model_meta
from ...validate import prepare_out
from ...train import distributed as D
from ...train.checkpoint import load_checkpoint, save_checkpoint, set_rng_state, rng_state
from ...train.data import build_datasets, data_fingerprint, fingerprint_mismatch
from ...train.loop import autocast, cosine_lr, masked_bce, predict, resolve_amp, to_device

SCHEDULES = ("cosine", "plateau", "constant")
_STOP_SYNC = 10  # distributed: ranks agree on a Ctrl-C / SIGTERM every this many steps
#: Options that must match for --resume to continue a run.
_RESUME_KEYS = ("arch", "model", "policy", "batch_size", "image_size", "lr", "weight_decay",
                "schedule", "lr_final", "seed", "frontal_only", "val_fraction")


@dataclass
class ChexpertTrainConfig:
    """Options of one training run (CLI: ``chexplain chexpert train``)."""

    csv: str
    out: str
    data: str | None = None  # folder the CSV's Paths are relative to (default: from the CSV)
    valid: str | None = None  # validation CSV; default: a patient split of ``csv``
    policy: str = "zeros"  # uncertain labels: zeros | ones | ignore
    frontal_only: bool = False
    val_fraction: float = 0.1
    epochs: int = 3
    batch_size: int = 16  # per process
    image_size: int = 224
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "cosine"  # per-step cosine to lr_final * lr | plateau | constant
    lr_final: float = 0.01
    patience: int = 3  # epochs without a better validation mean AUROC before stopping; 0: off
    arch: str = "densenet121"
    model: str | None = None  # any architecture: torchvision:NAME | timm:NAME | xrv:WEIGHTS
    weights: str | None = "auto"  # auto | imagenet | none | PATH
    amp: str = "auto"  # auto | off | bf16 | fp16
    channels_last: bool | None = None  # None: on (CPU and CUDA; chexplain.models.memory_format)
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    workers: int | None = None  # data-loading processes per rank; None: auto
    seed: int = 0
    checkpoint_every: int = 1000  # steps between mid-epoch checkpoints; 0: epoch ends only
    deterministic: bool = False  # deterministic algorithms (slower on CUDA)

    def check(self) -> None:
        self.policy = policy_name(self.policy)
        for name in ("epochs", "batch_size", "image_size"):
            if int(getattr(self, name)) < 1:
                raise ChexplainError(f"--{name.replace('_', '-')} must be at least 1")
        if self.image_size < 32:
            raise ChexplainError(f"--image-size {self.image_size} is below DenseNet's 32 px")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ChexplainError(f"--lr {self.lr} must be a positive number")
        if self.schedule not in SCHEDULES:
            raise ChexplainError(f"unknown --schedule {self.schedule!r}; choose from "
                                 f"{', '.join(SCHEDULES)}")
        if self.patience < 0 or self.checkpoint_every < 0 or (self.workers or 0) < 0:
            raise ChexplainError("--patience, --checkpoint-every and --workers must be >= 0")


def _workers(config: ChexpertTrainConfig, env: D.DistEnv) -> int:
    if config.workers is not None:
        return int(config.workers)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cpus or 1) // env.world_size - 1))


def _scheduler(config: ChexpertTrainConfig, opt: torch.optim.Optimizer, total_steps: int):
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=1)
    final = config.lr_final if config.schedule == "cosine" else 1.0
    total = max(total_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(1.0, s, total, final))


class _StopFlag:
    """Ctrl-C / SIGTERM ask the loop to checkpoint and stop after the current step; a second
    Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no handlers
            pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _json_line(rec: dict) -> str:
    return json.dumps(rec, allow_nan=False)


def train_chexpert(config: ChexpertTrainConfig, resume: bool = False, progress: bool = True,
                   on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train and return the summary (also written to ``out/summary.json``).

    ``resume=True`` continues ``out/last.pt`` exactly (a new run when there is none); without
    it an ``out`` that already holds a run is refused. ``on_step(epoch, step)`` is called
    after every optimiser step (for tests and monitoring). Runs distributed under torchrun."""
    config.check()
    prepare_out(config.out)
    env, device = D.init_distributed(config.device)
    try:
        return _train(config, env, device, resume, progress, on_step)
    finally:
        D.shutdown(env)


def _train(config: ChexpertTrainConfig, env: D.DistEnv, device: torch.device, resume: bool,
           progress: bool, on_step: Callable[[int, int], None] | None) -> dict[str, Any]:
    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    main = env.is_main
    say = print if main else (lambda *a, **k: None)
    if last_path.is_file() and not resume:
        raise ChexplainError(f"{out} already holds a run (last.pt); pass --resume to continue it "
                             "or choose another --out")
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dtype = resolve_amp(config.amp, device)
    channels_last = True if config.channels_last is None else bool(config.channels_last)

    torch.manual_seed(config.seed)
    if config.model:  # any architecture, with a new 14-output head (chexplain.zoo.training)
        from ...zoo.training import trainable, trained_meta

        built = trainable(config.model, len(OBSERVATIONS), config.weights)
        model, init, normalization = built.module, built.init, built.normalization
        meta = trained_meta(built, OBSERVATIONS, config.image_size, init)
    else:
        model, init = chexpert_densenet(config.arch, len(OBSERVATIONS), config.weights)
        normalization = "imagenet"
        meta = model_meta(config.arch, len(OBSERVATIONS), 3, OBSERVATIONS, "imagenet",
                          config.image_size, init)
    train_ds, val_ds, split = build_datasets(config, normalization)
    fingerprint = data_fingerprint(config, train_ds, val_ds)
    meta["policy"] = config.policy
    model = model.to(device, memory_format=torch.channels_last if channels_last else
                     torch.contiguous_format)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    workers = _workers(config, env)
    sampler = D.ResumableSampler(train_ds, env, seed=config.seed)
    loader_gen = torch.Generator()
    loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler,
                        num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
                        generator=loader_gen, drop_last=sampler.num_samples % config.batch_size == 1)
    val_loader = DataLoader(val_ds, batch_size=2 * config.batch_size,
                            sampler=D.ShardSampler(len(val_ds), env), num_workers=workers,
                            pin_memory=cuda, persistent_workers=workers > 0)
    steps_per_epoch = len(loader)
    sched = _scheduler(config, opt, steps_per_epoch * config.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    net = model
    if env.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None)

    # ------------------------------------------------------------------ state and resume
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "history": [], "best": None,
                             "best_epoch": None, "bad_epochs": 0, "finished": False,
                             "partial": {"loss_sum": 0.0, "count": 0.0, "images": 0,
                                         "seconds": 0.0}}
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, map_location=device)
        saved = ckpt.get("config", {})
        for key in _RESUME_KEYS:
            if saved.get(key) != asdict(config)[key]:
                raise ChexplainError(f"{last_path}: was written with {key}={saved.get(key)!r}, "
                                     f"not {asdict(config)[key]!r}; resume with the same options")
        differs = fingerprint_mismatch(ckpt.get("data"), fingerprint)
        if differs:
            raise ChexplainError(f"{last_path}: resume refused, the data differ from the run's: "
                                 f"{differs}; resume with the same data or choose another --out")
        if ckpt["state"]["batch"] and ckpt.get("world_size") != env.world_size:
            raise ChexplainError(f"{last_path}: stopped mid-epoch with {ckpt.get('world_size')} "
                                 f"process(es); resume it with the same number")
        if config.schedule == "cosine" and saved.get("epochs") != config.epochs:
            raise ChexplainError(f"{last_path}: its cosine schedule spans {saved.get('epochs')} "
                                 f"epochs; resume with --epochs {saved.get('epochs')}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        state = ckpt["state"]
        ranks = ckpt.get("rng_ranks") or [ckpt["rng"]]
        set_rng_state(ranks[env.rank] if env.rank < len(ranks) else ranks[0])
        init = ckpt["meta"]["init"]
        meta["init"] = init
        say(f"resuming {last_path}: epoch {state['epoch'] + 1}, batch {state['batch']} "
            f"of {steps_per_epoch}")
    elif resume:
        say(f"no checkpoint in {out}; starting a new run")
    run_facts = {"init": init, "device": str(device), "world_size": env.world_size,
                 "amp": str(dtype).removeprefix("torch.") if dtype else "off",
                 "channels_last": channels_last, "workers_per_rank": workers,
                 "global_batch": config.batch_size * env.world_size, "train_images": len(train_ds),
                 "val_images": len(val_ds), "validation": split,
                 "steps_per_epoch": steps_per_epoch, "torch": torch.__version__,
                 "threads": torch.get_num_threads()}
    if main:
        write_json(out / "config.json", {**asdict(config), "run": run_facts, "data_fingerprint": fingerprint})
        write_text(out / "metrics.jsonl", "".join(_json_line(r) + "\n" for r in state["history"]))
    say(f"{config.model or config.arch}: weights {init}"
        f"{'; a new 14-output head' if config.model else ''}; {len(train_ds)} train / {len(val_ds)} val images "
        f"({split}); {device}, {env.world_size} process(es), amp {run_facts['amp']}, "
        f"channels_last {channels_last}")

    def checkpoint() -> None:
        rngs: list[Any] = [None] * env.world_size
        if env.distributed:
            torch.distributed.all_gather_object(rngs, rng_state())
        else:
            rngs = [rng_state()]
        if main:
            save_checkpoint(last_path, model, opt, state["step"], None, scheduler=sched.state_dict(),
                            scaler=scaler.state_dict(), state=state, rng_ranks=rngs,
                            world_size=env.world_size, meta=meta,
                            config=asdict(config), data=fingerprint)

    # ------------------------------------------------------------------------ epochs
    with _StopFlag() as stop:
        while not state["finished"] and state["epoch"] < config.epochs:
            epoch = state["epoch"]
            sampler.set_position(epoch, state["batch"] * config.batch_size)
            loader_gen.manual_seed(config.seed * 7919 + epoch)
            part = state["partial"]
            loss_sum = torch.tensor(part["loss_sum"], dtype=torch.float64, device=device)
            count = torch.tensor(part["count"], dtype=torch.float64, device=device)
            t0, images = time.perf_counter(), 0
            net.train()
            bar = tqdm(total=steps_per_epoch, initial=state["batch"], disable=not (progress and main),
                       desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", dynamic_ncols=True,
                       mininterval=1.0)
            stopped = False
            for batch in loader:
                x, t, m = to_device(batch, device, channels_last)
                with autocast(device, dtype):
                    logits = net(x)
                loss, s, c = masked_bce(logits, t, m)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if config.schedule != "plateau":
                    sched.step()
                loss_sum += s
                count += c
                images += len(x)
                state["batch"] += 1
                state["step"] += 1
                if state["batch"] % 20 == 0 or state["batch"] == steps_per_epoch:
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise ChexplainError(f"training diverged in epoch {epoch + 1} (loss "
                                             f"{value}); lower --lr or use --amp off")
                    bar.set_postfix(loss=f"{float(loss_sum / count.clamp_min(1)):.4f}",
                                    refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(epoch, state["step"])
                want_stop = stop.requested
                if env.distributed and state["step"] % _STOP_SYNC == 0:  # all ranks agree
                    want_stop = D.all_reduce_sum(env, [want_stop], device)[0] > 0
                elif env.distributed:
                    want_stop = False
                periodic = config.checkpoint_every and state["step"] % config.checkpoint_every == 0
                if (periodic or want_stop) and state["batch"] < steps_per_epoch:
                    state["partial"] = {"loss_sum": float(loss_sum), "count": float(count),
                                        "images": part["images"] + images,
                                        "seconds": part["seconds"] + time.perf_counter() - t0}
                    checkpoint()
                if want_stop:
                    stopped = True
                    break
            bar.close()
            if stopped:
                say(f"stopped; {last_path} holds the state: rerun with --resume to continue")
                raise KeyboardInterrupt
            if cuda:
                torch.cuda.synchronize(device)
            seconds = part["seconds"] + time.perf_counter() - t0
            totals = D.all_reduce_sum(env, [loss_sum, count, part["images"] + images], device)
            record = _validate(net, val_loader, env, device, dtype, channels_last,
                               progress and main)
            mean = record["mean_auroc"]
            better = state["best_epoch"] is None or (
                mean is not None and (state["best"] is None or mean > state["best"]))
            if better:
                state["best"], state["best_epoch"], state["bad_epochs"] = mean, epoch + 1, 0
            else:
                state["bad_epochs"] += 1
            if config.schedule == "plateau":
                sched.step(mean if mean is not None else 0.0)
            rec = {"epoch": epoch + 1, "train_loss": totals[0] / max(totals[1], 1.0),
                   "val_loss": record["val_loss"], "auroc": record["auroc"], "mean_auroc": mean,
                   "competition_mean_auroc": record["competition_mean_auroc"],
                   "images_per_second": totals[2] / max(seconds, 1e-9),
                   "train_seconds": seconds, "lr": opt.param_groups[0]["lr"], "best": better}
            state["history"].append(rec)
            state.update(epoch=epoch + 1, batch=0, partial={"loss_sum": 0.0, "count": 0.0,
                                                             "images": 0, "seconds": 0.0})
            if config.patience and state["bad_epochs"] >= config.patience:
                state["finished"] = True
                say(f"early stop: no better validation mean AUROC for {config.patience} epochs")
            if main and better:
                save_checkpoint(best_path, model, None, state["step"], None, meta=meta,
                                epoch=epoch + 1, mean_auroc=mean, auroc=record["auroc"])
            checkpoint()
            if main:
                write_text(out / "metrics.jsonl",
                           "".join(_json_line(r) + "\n" for r in state["history"]))
            say(f"epoch {epoch + 1}/{config.epochs}: train loss {rec['train_loss']:.4f}, val loss "
                f"{rec['val_loss']:.4f}, mean AUROC "
                f"{'n/a' if mean is None else f'{mean:.4f}'}{' (best)' if better else ''}, "
                f"{rec['images_per_second']:.1f} img/s")
    D.shutdown(env, together=True)  # what follows is rank 0's alone
    summary = {"epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
               "best_mean_auroc": state["best"],
               "stopped_early": state["epoch"] < config.epochs,
               "best_auroc": next((r["auroc"] for r in state["history"]
                                   if r["epoch"] == state["best_epoch"]), None),
               "last": state["history"][-1] if state["history"] else None,
               "out": str(out), **run_facts}
    if main:
        write_json(out / "summary.json", summary)
    return summary


def _validate(net: torch.nn.Module, loader: DataLoader, env: D.DistEnv, device: torch.device,
              dtype: torch.dtype | None, channels_last: bool, progress: bool) -> dict[str, Any]:
    """Masked BCE and per-class AUROC over the whole validation set (all ranks' shards)."""
    model = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
    p = predict(model, loader, device, dtype, channels_last, progress, "validate")
    idx, logits, target, mask = D.all_gather_arrays(
        env, [p["index"], p["logits"], p["target"], p["mask"]])
    loss_sum, count = D.all_reduce_sum(env, [p["loss_sum"], p["loss_count"]], device)
    order = np.argsort(idx, kind="stable")
    result = per_class_auroc(target[order], logits[order], mask[order])
    return {"val_loss": loss_sum / max(count, 1.0), **result}

