"""DenseNet-121 builder (weights sources, logits, fx traceability) and the xrv adapter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import chexplain
from chexplain.data.chexpert import OBSERVATIONS
from chexplain.errors import ChexplainError, DataError
from chexplain.models.densenet import (IMAGENET_FILE, XRVLogits, chexpert_densenet,
                                       load_backbone)

XRV_ALL = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema",
           "Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule",
           "Mass", "Hernia", "Lung Lesion", "Fracture", "Lung Opacity",
           "Enlarged Cardiomediastinum"]


def test_densenet121_has_14_logits_and_traces(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    model, init = chexpert_densenet()
    assert init.startswith("random (no ImageNet weights in torchvision's cache")
    assert model.classifier.out_features == 14 and model.classifier.in_features == 1024
    assert sum(p.numel() for p in model.parameters()) == 6_968_206
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 14)
    assert out.min() < 0 < out.max()  # logits, not probabilities
    traced = torch.fx.symbolic_trace(model)
    assert not any(n.target in (torch.sigmoid, F.sigmoid) for n in traced.graph.nodes)
    torch.testing.assert_close(traced(x), out)
    with pytest.raises(ChexplainError, match="ImageNet weights not found"):
        chexpert_densenet(weights="imagenet")


def test_imagenet_weights_from_cache_and_file(monkeypatch, tmp_path):
    """A torchvision ImageNet state dict (old 'norm.1' key names, 1000 classes) loads into the
    features; the 14-output head stays new."""
    reference = torchvision.models.densenet121(weights=None)
    state = {}
    for key, value in reference.state_dict().items():
        if key.endswith("num_batches_tracked"):  # as in torchvision's published file
            continue
        for part in ("norm", "relu", "conv"):
            for i in "12":
                key = key.replace(f".{part}{i}.", f".{part}.{i}.")
        state[key] = value
    assert any(".norm.1." in k for k in state)
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / IMAGENET_FILE)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for weights in ("auto", str(tmp_path / "checkpoints" / IMAGENET_FILE)):
        model, init = chexpert_densenet(weights=weights)
        assert init.startswith("imagenet" if weights == "auto" else "file")
        torch.testing.assert_close(model.features.conv0.weight, reference.features.conv0.weight)
        torch.testing.assert_close(model.features.denseblock4.denselayer16.conv2.weight,
                                   reference.features.denseblock4.denselayer16.conv2.weight)
        assert model.classifier.out_features == 14
    tiny, _ = chexpert_densenet("tiny", weights=None)
    with pytest.raises(DataError, match="do not fit this DenseNet"):
        load_backbone(tiny, tmp_path / "checkpoints" / IMAGENET_FILE)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pt"):
        chexpert_densenet(weights=str(tmp_path / "junk.pt"))


def test_tiny_densenet_is_explainable():
    model, _ = chexpert_densenet("tiny", weights=None)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    R = chexplain.LRP(model)(x, target=3)
    assert R.shape == x.shape and torch.isfinite(R).all()
    assert chexplain.explain(model, x, method="gradcam", target=3).shape == (2, 64, 64)


class FakeXRV(nn.Module):
    """torchxrayvision's DenseNet layout, built locally without weights: 1 input channel,
    ``features`` then a functional head, sigmoid and operating-point rescaling in forward."""

    def __init__(self) -> None:
        super().__init__()
        net = torchvision.models.DenseNet(8, (2, 2, 2, 2), 16, bn_size=2, num_classes=18)
        net.features.conv0 = nn.Conv2d(1, 16, 7, 2, 3, bias=False)
        self.features, self.classifier = net.features, net.classifier
        self.pathologies = list(XRV_ALL)
        self.op_threshs = torch.rand(18) * 0.5 + 0.25

    def features2(self, x):
        out = F.relu(self.features(x), inplace=True)
        return F.adaptive_avg_pool2d(out, (1, 1)).view(x.size(0), -1)

    def forward(self, x):
        out = torch.sigmoid(self.classifier(self.features2(x)))
        if self.op_threshs is not None:  # xrv's op_norm: 0.5 at the operating point
            t = self.op_threshs
            out = torch.where(out < t, out / (2 * t), 1 - (1 - out) / (2 * (1 - t)))
        return out


def test_xrv_adapter_returns_logits_without_op_rescaling():
    torch.manual_seed(0)
    xrv = FakeXRV().eval()
    # untrained BatchNorm (running var 1): small inputs keep the sigmoid off 0 and 1, where
    # the operating-point rescaling would change nothing
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    adapter = XRVLogits(xrv).eval()
    logits = adapter(x)
    torch.testing.assert_close(logits, xrv.classifier(xrv.features2(x)))
    assert not torch.allclose(torch.sigmoid(logits), xrv(x))  # xrv's forward rescales
    xrv.op_threshs = None
    torch.testing.assert_close(torch.sigmoid(logits), xrv(x))
    assert adapter.pathologies == XRV_ALL

    chex = XRVLogits.for_chexpert(xrv).eval()
    assert chex.observations == [o for o in OBSERVATIONS
                                 if o in {"Pleural Effusion"} | set(XRV_ALL)]
    assert "Pleural Effusion" in chex.observations and None not in chex.observations
    rows = [XRV_ALL.index({"Pleural Effusion": "Effusion"}.get(o, o)) for o in chex.observations]
    torch.testing.assert_close(chex(x), logits[:, rows])
    traced = torch.fx.symbolic_trace(chex)
    torch.testing.assert_close(traced(x), chex(x))
    R = chexplain.LRP(chex)(x, target=0)
    assert R.shape == x.shape and torch.isfinite(R).all()

    with pytest.raises(ChexplainError, match="not an output"):
        XRVLogits(xrv, ["Support Devices"])
    with pytest.raises(ChexplainError, match="torchxrayvision-style"):
        XRVLogits(nn.Linear(3, 3))


def test_xrv_adapter_can_be_evaluated(phantom, tmp_path):
    from chexplain.data.chexpert import CheXpertDataset
    from chexplain.evaluate.auroc import evaluate_model

    chex = XRVLogits.for_chexpert(FakeXRV())
    ds = CheXpertDataset(phantom, normalization="xrv", size=32)
    assert ds[0]["image"].shape == (1, 32, 32)
    report = evaluate_model(chex, ds, tmp_path / "xrv", device="cpu", progress=False)
    assert list(report["auroc"]) == chex.observations
    assert report["auroc"]["Edema"] is None and report["undefined"]["Edema"] == "no positives"
    assert 0.0 <= report["auroc"]["Pleural Effusion"] <= 1.0
    header = (tmp_path / "xrv" / "predictions.csv").read_text().splitlines()[0]
    assert header == "Path," + ",".join(chex.observations)
