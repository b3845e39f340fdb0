"""``chexplain chexpert train --model SPEC``: any library's architecture with a new 14-output
head; its checkpoint records the spec and flows through every other command."""

from __future__ import annotations

import json

import pytest
import torch

from chexplain.cli import main
from chexplain.data.chexpert import OBSERVATIONS
from chexplain.errors import ChexplainError
from chexplain.zoo import load_model
from chexplain.zoo.training import rebuild, trainable, trained_meta

from .test_commands import every_command

torch.set_num_threads(1)


def _train(spec: str, zoo_phantom, out, *extra: str) -> int:
    return main(["chexpert", "train", "--csv", str(zoo_phantom), "--model", spec, "--weights",
                 "none", "--image-size", "32", "--epochs", "1", "--batch-size", "4",
                 "--val-fraction", "0.25", "--workers", "0", "--device", "cpu",
                 "--checkpoint-every", "0", "--schedule", "constant", "--out", str(out),
                 "--no-progress", *extra])


@pytest.mark.parametrize("spec", ["torchvision:resnet18", "timm:test_convnext"])
def test_trained_checkpoint_flows_through_every_command(spec, zoo_phantom, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(spec, zoo_phantom, run) == 0
    assert "a new 14-output head" in capsys.readouterr().out
    best = run / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["meta"]["spec"] == spec and ckpt["meta"]["image_size"] == 32
    m = load_model(best)
    assert m.names == list(OBSERVATIONS) and m.image_size == 32 and m.info["spec"] == spec
    x = torch.randn(1, m.channels, 32, 32)
    net = trainable(spec, 14, None).module  # the same architecture, the checkpoint's weights
    net.load_state_dict(ckpt["model"])
    with torch.no_grad():
        assert torch.allclose(m.module(x), net.eval()(x), atol=1e-5)
    every_command(["--model", str(best)], zoo_phantom, tmp_path / "cmds", size=32)
    capsys.readouterr()
    # resume continues the same run with more epochs
    assert _train(spec, zoo_phantom, run, "--resume", "--epochs", "2") == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]


def test_xrv_training_keeps_the_features_and_replaces_the_head(models):
    import torchxrayvision as xrv

    t = trainable("xrv:densenet121-res224-all", 14, models["xrv_densenet"])
    assert t.normalization.channels == 1 and t.image_size == 224
    assert t.module.classifier.out_features == 14 and t.init.startswith("pretrained")
    ref = xrv.models.DenseNet(weights=None, num_classes=18)
    ref.load_state_dict(torch.load(models["xrv_densenet"], weights_only=True))
    assert torch.equal(t.module.features.conv0.weight, ref.features.conv0.weight)
    meta = trained_meta(t, OBSERVATIONS, 64, t.init)
    again, norm = rebuild(meta, "best.pt")
    again.load_state_dict(t.module.state_dict())
    assert norm == t.normalization
    r = trainable("xrv:resnet50-res512-all", 14, models["xrv_resnet"])
    assert r.module.fc.out_features == 14 and r.module.conv1.in_channels == 1


def test_training_spec_mistakes_are_one_line(zoo_phantom, tmp_path, capsys):
    assert main(["chexpert", "train", "--csv", str(zoo_phantom), "--model", "timm:test_convnext",
                 "--arch", "tiny", "--out", str(tmp_path / "a")]) == 2
    assert "not both" in capsys.readouterr().err
    assert _train("onnx:thing", zoo_phantom, tmp_path / "b") == 2
    assert "training takes torchvision:NAME" in capsys.readouterr().err
    with pytest.raises(ChexplainError, match="--weights imagenet goes with --arch"):
        trainable("torchvision:resnet18", 14, "imagenet")
    assert not (tmp_path / "b" / "last.pt").exists()
