"""Training of the MNIST MLPs of Bach et al. 2015 (PLoS ONE e0130140), experiments I and II.

The whole data set lives as one uint8 tensor on the training device; the batches of 25 are
drawn from a per-epoch permutation and encoded and augmented ``log_every`` batches at a time,
in one vectorised call on the device (:mod:`chexplain.studies.mnist.augment`); the loss is read
back to the host (a device sync) only every ``log_every`` iterations, for the progress bar. Defaults follow the study (batch 25, its iteration
counts and augmentations). The study trained with plain SGD; our default optimiser is Adam
(learning rate 1e-3 for experiment I, 5e-4 for II) with a cosine decay to 1% of it; the
Gaussian noise of experiment I has standard deviation 0.3 on pixels scaled to [0, 1]. With
these, experiment I reaches 98.45% after the study's 50,000 iterations (study: 98.25%). Checkpoints are atomic and every
random draw comes from a seeded generator, so ``resume=True`` continues a run exactly.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import MnistData
from ...errors import ChexplainError
from ...io import write_json
from .experiments import Experiment, get_experiment
from .model import mnist_mlp
from ...train.checkpoint import load_checkpoint, restore, save_checkpoint
from ...train.loop import cosine_lr, resolve_device
from .augment import augment, encode

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": {"1": 1e-3, "2": 5e-4}, "sgd": {"1": 0.02, "2": 0.01}}


@dataclass
class TrainConfig:
    """Options of one training run; ``None`` means the experiment's default."""

    experiment: str = "1"
    iterations: int | None = None
    batch_size: int = 25
    optimizer: str = "adam"
    lr: float | None = None
    lr_final: float = 0.01  # cosine decay to this fraction of lr; 1.0 keeps it constant
    momentum: float = 0.9  # SGD (Nesterov)
    noise_std: float = 0.3  # experiment I: Gaussian noise on inputs scaled to [0, 1] (0.1: 98.37%, 0.3: 98.45%)
    max_shift: int = 4  # experiment II
    salt_pepper: float = 0.1  # experiment II
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 5000
    log_every: int = 100  # progress, loss read-back and the augmentation block, in iterations

    def resolved(self) -> tuple[Experiment, int, float]:
        exp = get_experiment(self.experiment)
        iterations = exp.iterations if self.iterations is None else int(self.iterations)
        if iterations < 1 or self.batch_size < 1:
            raise ChexplainError("--iterations and --batch-size must be positive")
        if self.optimizer not in OPTIMIZERS:
            raise ChexplainError(f"unknown optimiser {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        lr = self.lr if self.lr is not None else DEFAULT_LR[self.optimizer][exp.name[0]]
        return exp, iterations, float(lr)


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, inputs: str, mean: float, batch: int = 2000) -> float:
    """Test accuracy of ``model`` on uint8 ``images`` (encoded as in training, no augmentation)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(labels), batch):
        x = encode(images[i : i + batch].to(device), inputs, mean)
        correct += int((model(x).argmax(1).cpu() == labels[i : i + batch]).sum())
    return correct / max(len(labels), 1)


def train_mnist(
    config: TrainConfig,
    data: MnistData,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """Train ``config.experiment`` on ``data``; write ``out_dir/model.pt`` and ``metrics.json``.

    While training, ``out_dir/checkpoint.pt`` holds the full state (model, optimiser, random
    generators, epoch permutation) every ``checkpoint_every`` iterations and on Ctrl-C;
    ``resume=True`` continues from it. Returns the metrics.
    """
    from ...validate import prepare_out

    exp, iterations, lr = config.resolved()
    device = resolve_device(config.device)
    out = prepare_out(out_dir)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(config.seed)
    model = mnist_mlp(exp).to(device)
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum, nesterov=config.momentum > 0)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    images = data.train_images.to(device)
    labels = data.train_labels.to(device)
    n = len(labels)
    if n < config.batch_size:
        raise ChexplainError(f"{n} training digits are fewer than one batch of {config.batch_size}")
    mean = float(data.train_images.float().mean() / 255.0) if exp.inputs == "zero-mean" else 0.0

    block = max(1, int(config.log_every))
    step, elapsed, pos = 0, 0.0, n
    perm = torch.empty(0, dtype=torch.long, device=device)
    block_start = 0
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        saved = ckpt.get("config", {})
        for key in ("experiment", "batch_size", "optimizer", "seed"):
            if saved.get(key) != asdict(config)[key]:
                raise ChexplainError(f"{ckpt_path}: was written with {key}={saved.get(key)!r}, not {asdict(config)[key]!r}")
        if ckpt.get("iterations") != iterations:
            raise ChexplainError(f"{ckpt_path}: a run of {ckpt.get('iterations')} iterations; resume it with --iterations {ckpt.get('iterations')}")
        step = restore(ckpt, model, opt, {"data": gen})
        elapsed, pos, perm = float(ckpt["elapsed"]), int(ckpt["pos"]), ckpt["perm"].to(device)
        block_start = int(ckpt.get("block_start", step))
        block = int(ckpt.get("block", block))
    # the random state, position and permutation at the start of the current block: a
    # checkpoint stores these, so that a resumed run draws the same block again and skips
    # the batches already trained on
    start_state = (gen.get_state(), pos, perm)

    def checkpoint() -> None:
        now = gen.get_state()
        gen.set_state(start_state[0])
        try:
            save_checkpoint(ckpt_path, model, opt, step, {"data": gen}, config=asdict(config),
                            iterations=iterations, elapsed=elapsed + time.perf_counter() - t0,
                            pos=start_state[1], perm=start_state[2].cpu(), block_start=block_start,
                            block=block)
        finally:
            gen.set_state(now)

    def draw_block(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k batches of indices from the permutation, encoded and augmented in one call."""
        nonlocal perm, pos
        parts = []
        for _ in range(k):
            if pos + config.batch_size > n:
                perm, pos = torch.randperm(n, generator=gen, device=device), 0
            parts.append(perm[pos : pos + config.batch_size])
            pos += config.batch_size
        idx = torch.cat(parts)
        x = encode(images[idx], exp.inputs, mean)
        x = augment(x, exp.augment, gen, config.noise_std, config.max_shift, config.salt_pepper)
        return x.view(k, config.batch_size, *x.shape[1:]), labels[idx].view(k, config.batch_size)

    model.train()
    t0 = time.perf_counter()
    bar = tqdm(total=iterations, initial=step, desc=label or f"experiment {exp.name}", unit="it",
               disable=not progress, mininterval=2.0, dynamic_ncols=True)
    running = None
    xb = yb = None
    try:
        while step < iterations:
            if xb is None or step - block_start >= xb.shape[0]:
                if xb is not None:
                    block_start, start_state = step, (gen.get_state(), pos, perm)
                xb, yb = draw_block(min(block, iterations - block_start))
                if step - block_start >= xb.shape[0]:  # resumed exactly at the block's end
                    block_start, start_state = step, (gen.get_state(), pos, perm)
                    xb, yb = draw_block(min(block, iterations - block_start))
            j = step - block_start
            for group in opt.param_groups:
                group["lr"] = cosine_lr(lr, step, iterations, config.lr_final)
            loss = F.cross_entropy(model(xb[j]), yb[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % block == 0:
                value = float(loss.detach())  # the only host sync: once per block
                if not math.isfinite(value):
                    raise ChexplainError(f"training diverged at iteration {step} (loss {value}); lower --lr")
                running = value if running is None else 0.9 * running + 0.1 * value
                bar.set_postfix(loss=f"{running:.4f}", refresh=False)
                bar.update(step - bar.n)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < iterations:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        raise
    bar.update(step - bar.n)
    bar.close()
    train_seconds = elapsed + time.perf_counter() - t0

    accuracy = evaluate(model, data.test_images, data.test_labels, exp.inputs, mean)
    train_accuracy = evaluate(model, data.train_images[:10000], data.train_labels[:10000], exp.inputs, mean)
    metrics = {
        "experiment": exp.name,
        "net": exp.label,
        "test_accuracy": accuracy,
        "test_error": 1.0 - accuracy,
        "train_accuracy_first_10k": train_accuracy,
        "iterations": iterations,
        "paper_iterations": exp.iterations,
        "paper_accuracy": exp.paper_accuracy,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "lr": lr,
        "lr_schedule": f"cosine to {config.lr_final:g} x lr" if config.lr_final != 1 else "constant",
        "augmentation": {"kind": exp.augment, "noise_std": config.noise_std} if exp.augment == "gaussian" else
        {"kind": exp.augment, "max_shift": config.max_shift, "salt_pepper": config.salt_pepper},
        "inputs": exp.inputs,
        "seed": config.seed,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 2),
        "data_source": data.source,
        "n_train": n,
        "n_test": len(data.test_labels),
    }
    meta = {**exp.to_dict(), "experiment": exp.name, "mean": mean, "metrics": metrics}
    save_checkpoint(out / "model.pt", model, None, step, None, kind="chexplain-mnist-mlp", meta=meta)
    write_json(out / "metrics.json", metrics)
    ckpt_path.unlink(missing_ok=True)
    return metrics
