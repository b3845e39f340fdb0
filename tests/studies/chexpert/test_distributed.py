"""The same training command under torchrun: 2 CPU processes with gloo and DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from chexplain.data.chexpert import OBSERVATIONS


@pytest.mark.skipif(not torch.distributed.is_available() or
                    not torch.distributed.is_gloo_available(), reason="no gloo backend")
def test_two_process_gloo_run(phantom, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "chexplain.cli", "chexpert", "train", "--data", str(phantom.parent.parent),
           "--csv", "phantom/train.csv", "--arch", "tiny", "--weights", "none",
           "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--workers", "0",
           "--device", "cpu", "--val-fraction", "0.25", "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("epoch 2/2:") == 1  # rank 0 alone reports
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # rank 0 alone writes
    for i, line in enumerate(lines):
        rec = json.loads(line)
        assert {"epoch", "train_loss", "val_loss", "auroc", "mean_auroc",
                "images_per_second"} <= set(rec) and rec["epoch"] == i + 1
        assert list(rec["auroc"]) == list(OBSERVATIONS)
        assert rec["auroc"]["Edema"] is None
    run = json.loads((out / "config.json").read_text())["run"]
    assert run["world_size"] == 2 and run["global_batch"] == 8
    assert run["val_images"] == 12 and run["steps_per_epoch"] == 5  # 36 / 2 ranks / 4
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt",
                                                     "metrics.jsonl", "summary.json"]
