"""``chexplain.load_model``: every spec form, its names, preprocessing and logits (checked
against the library's own model), structured outputs, and one-line refusals."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
import torch

import chexplain
from chexplain.data.chexpert import OBSERVATIONS
from chexplain.errors import ChexplainError
from chexplain.zoo import load_model

torch.set_num_threads(1)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_xrv_densenet_logits_names_and_preprocessing(models):
    import torchxrayvision as xrv

    m = load_model("xrv:densenet121-res224-all", weights=models["xrv_densenet"])
    assert m.image_size == 224 and m.channels == 1 and m.record()["normalization"] == "xrv"
    assert m.normalization.bounds() == ((-1024.0,), (1024.0,))
    assert m.sha256 == sha(models["xrv_densenet"]) and m.record()["spec"] == "xrv:densenet121-res224-all"
    labels = xrv.models.model_urls["densenet121-res224-all"]["labels"]
    assert m.names == [{"Effusion": "Pleural Effusion"}.get(p, p) for p in labels if p]
    ref = xrv.models.DenseNet(weights=None, num_classes=18)
    ref.load_state_dict(torch.load(models["xrv_densenet"], weights_only=True))
    x = torch.randn(2, 1, 224, 224) * 300
    with torch.no_grad():  # no op_threshs, no sigmoid: the library's forward gives the logits
        assert torch.allclose(m.module(x), ref.eval()(x), atol=1e-4)


def test_xrv_empty_pathologies_are_not_outputs(models):
    import torchxrayvision as xrv

    labels = xrv.models.model_urls["densenet121-res224-nih"]["labels"]
    assert "" in labels  # outputs the NIH model was not trained for
    m = load_model("xrv:densenet121-res224-nih", weights=models["xrv_densenet"], image_size=64)
    kept = [k for k, p in enumerate(labels) if p]
    assert len(m.names) == len(kept) and all(m.names)
    ref = xrv.models.DenseNet(weights=None, num_classes=18)
    ref.load_state_dict(torch.load(models["xrv_densenet"], weights_only=True))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        full = ref.classifier(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(
            torch.relu(ref.eval().features(x)), 1), 1))
        assert torch.allclose(m.module(x), full[:, kept], atol=1e-5)


def test_xrv_resnet_is_the_library_layout(models):
    import torchvision

    m = load_model("xrv:resnet50-res512-all", weights=models["xrv_resnet"], image_size=64)
    assert m.image_size == 64 and m.channels == 1 and "Pleural Effusion" in m.names
    ref = torchvision.models.resnet50(num_classes=18)
    ref.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    ref.load_state_dict(torch.load(models["xrv_resnet"], weights_only=True))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m.module(x), ref.eval()(x), atol=1e-4)
    assert load_model("xrv:resnet50-res512-all", weights=models["xrv_resnet"]).image_size == 512


def test_timm_and_torchvision_by_name(models):
    import timm
    import torchvision

    t = load_model("timm:test_convnext", weights=models["timm"])
    cfg = timm.create_model("test_convnext").pretrained_cfg
    assert t.names == list(OBSERVATIONS) and t.image_size == cfg["input_size"][-1]
    assert t.normalization.mean == tuple(cfg["mean"]) and t.sha256 == sha(models["timm"])
    v = load_model("torchvision:resnet18", weights=models["torchvision"], image_size=64,
                   normalization="0.5/0.25", channels=3)
    assert v.image_size == 64 and v.normalization.mean == (0.5, 0.5, 0.5)
    ref = torchvision.models.resnet18(num_classes=14)
    ref.load_state_dict(torch.load(models["torchvision"], weights_only=True)["model"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(v.module(x), ref.eval()(x), atol=1e-5)
    assert load_model("torchvision:resnet18", weights=models["torchvision"]).image_size == 224


@pytest.mark.parametrize("factory", ["tuple_model", "dict_model", "object_model"])
def test_structured_outputs_are_explained_as_their_logits(models, factory):
    """LRP and Grad-CAM of the wrapped model equal those of the same network returning logits."""
    import importlib.util

    m = load_model(f"{models['factory']}:{factory}")
    assert m.names == ["Cardiomegaly", "Edema", "Pleural Effusion"] and m.image_size == 32
    spec = importlib.util.spec_from_file_location("zoo_factory_oracle", models["factory"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Logits(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.fc(torch.flatten(self.net.pool(self.net.features(x)), 1))

    torch.manual_seed(0)
    plain = Logits(mod.Net()).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m.module(x), plain(x))
    for method in ("epsilon-plus-flat", "gradcam"):
        got = chexplain.explain(m.module, x, method=method, target=1)
        want = chexplain.explain(plain, x, method=method, target=1)
        assert torch.allclose(got, want, atol=1e-6) and got.abs().sum() > 0, method


def test_output_choice_and_notes(models):
    tup = load_model(f"{models['factory']}:tuple_model")
    assert tup.identity["output"] == "[0]" and any("element 0" in n for n in tup.notes)
    with pytest.raises(ChexplainError, match=r"output \[1\] is a Tensor|not the logits|shape"):
        load_model(f"{models['factory']}:tuple_model", output=1)  # the feature map
    with pytest.raises(ChexplainError, match="returns 2 elements"):
        load_model(f"{models['factory']}:tuple_model", output=5)
    with pytest.raises(ChexplainError, match="keys features, logits; --output 'nope'"):
        load_model(f"{models['factory']}:dict_model", output="nope")
    assert load_model(f"{models['factory']}:object_model").identity["output"] == ".logits"


def test_names_from_option_file_and_defaults(models, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    m = load_model(f"{models['factory']}:tuple_model", names=str(names))
    assert m.names == ["a", "b", "c"]
    plain = load_model(f"{models['factory']}:plain_model", image_size=16, normalization="xrv")
    assert plain.names == list(OBSERVATIONS) and any("CheXpert" in n for n in plain.notes)


def test_checkpoint_spec_is_the_trained_model(tiny_ckpt):
    from chexplain.models.densenet import load_trained

    m = load_model(tiny_ckpt)
    ref, meta = load_trained(tiny_ckpt)
    assert m.names == meta["observations"] and m.image_size == 64 and m.sha256 == sha(tiny_ckpt)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m.module(x), ref(x))


@pytest.fixture
def tiny_ckpt(tmp_path):
    return _tiny_checkpoint(tmp_path / "best.pt", OBSERVATIONS)


def _tiny_checkpoint(path, names):
    from chexplain.models.densenet import chexpert_densenet, model_meta
    from chexplain.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, init = chexpert_densenet("tiny", len(names), None)
    return save_checkpoint(path, model, meta=model_meta("tiny", len(names), 3, list(names),
                                                       "imagenet", 64, init), epoch=1)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_bad_specs_give_one_line(models, tmp_path):
    cases = [
        ("xrv:nonsense", {}, "unknown TorchXRayVision weights"),
        ("timm:no_such_net", {"weights": models["timm"]}, "unknown timm model"),
        ("torchvision:no_such_net", {"weights": models["torchvision"]}, "unknown torchvision model"),
        ("timm:test_convnext", {}, "give the model's weights with --weights"),
        ("torchvision:resnet18", {"weights": models["timm"]}, "weights do not fit"),
        ("torchvision:resnet18", {"weights": tmp_path / "absent.pt"}, "absent.pt not found"),
        ("nowhere/best.pt", {}, "no such checkpoint file"),
        ("xrv:", {}, "give the xrv model's name"),
        (str(tmp_path), {}, "is a folder"),
        (f"{models['factory']}:not_a_module", {}, "returned a int, not an nn.Module"),
        (f"{models['factory']}:missing", {}, "no callable 'missing'"),
        (f"{tmp_path}/none.py:f", {}, "no such Python file"),
        ("no_such_package_xyz.models:f", {}, "cannot import module"),
        (f"{models['factory']}:duplicate_names", {}, "duplicate output name 'edema'"),
        (f"{models['factory']}:tuple_model", {"names": "a,b"}, "gives 2 output names but the model has 3"),
        (f"{models['factory']}:tuple_model", {"names": "a,,c"}, "output 1 has an empty name"),
        (f"{models['factory']}:plain_model", {"channels": 3, "image_size": 16},
         "fails on a 3-channel 16x16 input"),
        (f"{models['factory']}:tuple_model", {"normalization": "0.5"}, "MEAN/STD"),
    ]
    for spec, kwargs, message in cases:
        with pytest.raises(ChexplainError) as exc:
            load_model(spec, **kwargs)
        assert message in one_line(exc), (spec, str(exc.value))


def test_duplicate_outputs_in_a_checkpoint_are_refused(tmp_path):
    names = list(OBSERVATIONS)
    names[5] = "Cardiomegaly"
    path = _tiny_checkpoint(tmp_path / "dup.pt", names)
    with pytest.raises(ChexplainError) as exc:
        load_model(path)
    assert "duplicate output name 'Cardiomegaly'" in one_line(exc)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_and_export_archives_are_refused(models, tmp_path):
    net = load_model(f"{models['factory']}:plain_model", image_size=16, normalization="xrv").module
    script = tmp_path / "scripted.pt"
    torch.jit.trace(net, torch.zeros(1, 1, 16, 16)).save(str(script))
    with pytest.raises(ChexplainError) as exc:
        load_model(script)
    assert "TorchScript" in one_line(exc) and "Python module graph" in str(exc.value)
    program = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 16, 16),)), str(program))
    with pytest.raises(ChexplainError) as exc:
        load_model(program)
    assert "torch.export" in one_line(exc)
    assert zipfile.is_zipfile(program)


def test_plain_state_dict_as_checkpoint_says_what_to_do(models):
    with pytest.raises(ChexplainError) as exc:
        load_model(models["xrv_densenet"])
    assert "--weights" in one_line(exc) and "not a chexplain model checkpoint" in str(exc.value)


def test_xrv_missing_cache_offline_names_the_place(monkeypatch, tmp_path):
    import torchxrayvision as xrv

    monkeypatch.setattr(xrv.utils, "get_cache_dir", lambda: str(tmp_path / "cache"))

    def offline(url, filename):
        raise OSError("network unreachable")

    monkeypatch.setattr(xrv.utils, "download", offline)
    with pytest.raises(ChexplainError) as exc:
        load_model("xrv:densenet121-res224-all")
    assert str(tmp_path / "cache") in one_line(exc) and "--weights FILE" in str(exc.value)


def test_caller_model_is_untouched_and_records_are_json(models):
    import json

    m = load_model(f"{models['factory']}:tuple_model")
    rec = json.loads(json.dumps(m.record()))
    assert rec["sha256"] == m.sha256 and rec["normalization"] == "0.5/0.25" and rec["channels"] == 1
    again = load_model(f"{models['factory']}:tuple_model")
    assert again.sha256 == m.sha256  # the state dict's digest is stable


def test_state_digest_covers_scalar_buffers():
    """0-dim entries (BatchNorm's num_batches_tracked, a learned temperature) are hashed by their
    bytes like any tensor: the digest changes with their value and nothing else."""
    import hashlib

    from chexplain.zoo.base import state_sha256

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    net.register_buffer("temperature", torch.tensor(0.5))
    first = state_sha256(net)
    by_hand = hashlib.sha256()
    for key, value in net.state_dict().items():
        by_hand.update(f"{key}:{tuple(value.shape)}:{value.dtype}\n".encode())
        by_hand.update(value.detach().numpy().tobytes())
    assert first == by_hand.hexdigest()
    net.temperature.fill_(0.25)
    assert state_sha256(net) != first
    net.temperature.fill_(0.5)
    assert state_sha256(net) == first
