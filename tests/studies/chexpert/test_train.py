"""CheXpert trainer on phantom data: outputs, learning, exact resume, policies, AMP, errors."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from chexplain.data.chexpert import OBSERVATIONS
from chexplain.errors import ChexplainError
from chexplain.models.densenet import load_trained
from chexplain.studies.chexpert.train import train_chexpert
from chexplain.train.checkpoint import load_checkpoint
from chexplain.train.data import build_datasets
from chexplain.train.loop import masked_bce

KEYS = {"epoch", "train_loss", "val_loss", "auroc", "mean_auroc", "images_per_second"}


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_one_epoch_writes_metrics_and_checkpoints(tiny_config, tmp_path):
    config = tiny_config(epochs=1, workers=1)  # one data-loading worker process
    summary = train_chexpert(config, progress=False)
    out = tmp_path / "run"
    (rec,) = _metrics(out)
    assert KEYS <= set(rec) and rec["epoch"] == 1
    assert list(rec["auroc"]) == list(OBSERVATIONS)
    assert rec["auroc"]["Edema"] is None  # the phantom never draws edema: undefined, not 0/1
    assert all(v is None or 0.0 <= v <= 1.0 for v in rec["auroc"].values())
    assert rec["images_per_second"] > 0 and np.isfinite(rec["train_loss"])
    assert summary["train_images"] + summary["val_images"] == 48
    for name in ("best.pt", "last.pt"):  # both load with weights_only=True
        torch.load(out / name, weights_only=True)
    model, meta = load_trained(out / "best.pt")
    assert meta["arch"] == "tiny" and meta["epoch"] == 1 and meta["init"] == "random"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 14)
    assert json.loads((out / "config.json").read_text())["run"]["workers_per_rank"] == 1
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries
    with pytest.raises(ChexplainError, match="already holds a run"):
        train_chexpert(config, progress=False)


def test_loss_falls_over_epochs(tiny_config, tmp_path):
    train_chexpert(tiny_config(epochs=4, schedule="constant", patience=0), progress=False)
    losses = [r["train_loss"] for r in _metrics(tmp_path / "run")]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.02, losses


@pytest.mark.parametrize("how", ["crash", "signal"])
def test_interrupted_run_resumes_to_identical_weights(tiny_config, tmp_path, how):
    """2 epochs, a checkpoint every 2 steps: stop at the 3rd step of epoch 2, resume, compare."""
    ref = tiny_config(out=str(tmp_path / "ref"), checkpoint_every=2)
    steps = train_chexpert(ref, progress=False)["steps_per_epoch"]
    assert steps == 5  # 36 training images, batch 8
    run = tiny_config(out=str(tmp_path / "cut"), checkpoint_every=2)

    class Crash(Exception):
        pass

    def on_step(epoch, step):
        if step == steps + 3:
            if how == "crash":  # killed: the last periodic checkpoint (step 8) survives
                raise Crash
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: checkpoint after this step

    with pytest.raises(Crash if how == "crash" else KeyboardInterrupt):
        train_chexpert(run, progress=False, on_step=on_step)
    state = load_checkpoint(tmp_path / "cut" / "last.pt")["state"]
    # crash: the checkpoint of step 6 (batch 1 of epoch 2); Ctrl-C: one after step 8
    assert (state["epoch"], state["batch"]) == (1, 1 if how == "crash" else 3)
    assert len(_metrics(tmp_path / "cut")) == 1
    train_chexpert(run, resume=True, progress=False)
    a, b = _weights(tmp_path / "ref" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ma, mb = _metrics(tmp_path / "ref"), _metrics(tmp_path / "cut")
    for ra, rb in zip(ma, mb, strict=True):
        for key in ("train_loss", "val_loss", "auroc", "mean_auroc", "lr"):
            assert ra[key] == pytest.approx(rb[key]), key
    ca, cb = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ca["scheduler"]["last_epoch"] == cb["scheduler"]["last_epoch"] == 2 * steps
    for x, y in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(x["exp_avg_sq"], y["exp_avg_sq"])
    # a finished run resumes to nothing; other options are refused
    assert train_chexpert(run, resume=True, progress=False)["epochs_run"] == 2
    with pytest.raises(ChexplainError, match="batch_size=8"):
        train_chexpert(tiny_config(out=str(tmp_path / "cut"), batch_size=4), resume=True,
                       progress=False)


def test_a_finished_run_resumes_with_more_epochs(tiny_config, tmp_path):
    """Without a cosine schedule tied to --epochs, --resume with more epochs trains on."""
    train_chexpert(tiny_config(epochs=1, schedule="constant", patience=0), progress=False)
    summary = train_chexpert(tiny_config(epochs=2, schedule="constant", patience=0), resume=True, progress=False)
    assert summary["epochs_run"] == 2
    assert [r["epoch"] for r in _metrics(tmp_path / "run")] == [1, 2]


def _uncertain_csv(phantom, tmp_path):
    frame = pd.read_csv(phantom, dtype=str, keep_default_na=False)
    frame.loc[0, "Edema"] = "-1.0"
    frame.loc[0, "Cardiomegaly"] = "-1.0"
    frame.loc[1, "Edema"] = "1.0"
    path = phantom.parent / "uncertain.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("policy,target,mask", [("zeros", 0, 1), ("ones", 1, 1),
                                                ("ignore", 0, 0), ("U-Ignore", 0, 0)])
def test_policies_change_targets(tiny_config, phantom, tmp_path, policy, target, mask):
    csv = _uncertain_csv(phantom, tmp_path)
    config = tiny_config(csv=str(csv), policy=policy, valid=str(csv))
    train, val, how = build_datasets(config)
    assert "validation CSV" in how and len(train) == len(val) == 48
    edema, cardio = OBSERVATIONS.index("Edema"), OBSERVATIONS.index("Cardiomegaly")
    item = train[0]
    assert item["target"][edema] == target and item["mask"][edema] == mask
    assert item["target"][cardio] == target and item["mask"][cardio] == mask
    assert train[1]["target"][edema] == 1 and train[1]["mask"][edema] == 1  # certain: unchanged
    assert item["mask"].sum() == 14 - 2 * (1 - mask)


def test_masked_bce_ignores_masked_entries():
    logits = torch.randn(4, 14, requires_grad=True)
    target = (torch.rand(4, 14) < 0.5).float()
    mask = torch.ones(4, 14)
    mask[0, 3] = 0
    loss, total, count = masked_bce(logits, target, mask)
    loss.backward()
    assert logits.grad[0, 3] == 0 and count == 55
    full = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert loss.item() == pytest.approx((full * mask).sum().item() / 55)


def test_early_stopping_and_all_undefined_validation(tiny_config, phantom, tmp_path):
    """A validation set without any positive: every AUROC is null, the mean is null, and the
    run stops after `patience` epochs without improvement."""
    frame = pd.read_csv(phantom, dtype=str, keep_default_na=False)
    for name in OBSERVATIONS:
        frame[name] = "0.0"
    valid = phantom.parent / "negatives.csv"
    frame.iloc[:8].to_csv(valid, index=False)
    summary = train_chexpert(tiny_config(valid=str(valid), epochs=5, patience=1), progress=False)
    recs = _metrics(tmp_path / "run")
    assert len(recs) == 2 and summary["stopped_early"] and summary["best_epoch"] == 1
    assert all(v is None for v in recs[0]["auroc"].values()) and recs[0]["mean_auroc"] is None


def test_bf16_autocast_and_channels_last_on_cpu(tiny_config, tmp_path):
    summary = train_chexpert(tiny_config(epochs=1, amp="bf16", channels_last=True),
                             progress=False)
    assert summary["amp"] == "bfloat16" and summary["channels_last"] is True
    (rec,) = _metrics(tmp_path / "run")
    assert np.isfinite(rec["train_loss"]) and np.isfinite(rec["val_loss"])
    with pytest.raises(ChexplainError, match="fp16 needs a CUDA"):
        train_chexpert(tiny_config(out=str(tmp_path / "x"), amp="fp16"), progress=False)
