"""``--param METHOD:NAME=VALUE``: parsed, checked before the model runs, and carried to the
method by explain, compare and audit."""

import json

import numpy as np
import pytest
import torch

from chexplain.cli import main
from chexplain.cli.method_params import parse_params, parse_value
from chexplain.errors import ChexplainError
from chexplain.evaluate.baselines import Attributor, params_record


def test_values_are_read_as_bools_numbers_or_text():
    assert parse_value("true") is True and parse_value("False") is False
    assert parse_value("64") == 64 and isinstance(parse_value("64"), int)
    assert parse_value("0.15") == 0.15 and parse_value("-1e-3") == -0.001
    assert parse_value("blur") == "blur"


def test_parameters_group_by_method():
    got = parse_params(["integrated-gradients:steps=64", "integrated-gradients:baseline=blur",
                        "smoothgrad:sigma=0.1", "lrp-epsilon:epsilon=0.01", "gradcam:relu=false"],
                       ["integrated-gradients", "smoothgrad", "lrp-epsilon", "gradcam"])
    assert got == {"integrated-gradients": {"steps": 64, "baseline": "blur"},
                   "smoothgrad": {"sigma": 0.1}, "lrp-epsilon": {"epsilon": 0.01},
                   "gradcam": {"relu": False}}
    assert parse_params(["steps=8"], ["integrated-gradients"]) == {"integrated-gradients": {"steps": 8}}


@pytest.mark.parametrize("spec, methods, needle", [
    ("steps64", ["integrated-gradients"], "METHOD:NAME=VALUE"),
    ("steps=", ["integrated-gradients"], "METHOD:NAME=VALUE"),
    ("steps=8", ["integrated-gradients", "smoothgrad"], "name the method"),
    ("occlusion:window=8", ["smoothgrad"], "not among the methods"),
    ("integrated-gradients:stepz=8", ["integrated-gradients"], "stepz"),
    ("integrated-gradients:steps=0", ["integrated-gradients"], "steps"),
    ("smoothgrad:variant=median", ["smoothgrad"], "variant"),
    ("lrp-epsilon:epsilon=-1", ["lrp-epsilon"], "epsilon"),
    ("lrp-epsilon:gamma=0.25", ["lrp-epsilon"], "gamma"),
    ("gradcam:relu=3", ["gradcam"], "relu"),
    ("gradcam:steps=3", ["gradcam"], "steps"),
    ("gradient-x-input:steps=3", ["gradient-x-input"], "takes no parameter"),
    ("integrated-gradients:baseline=/nonexistent/base.png", ["integrated-gradients"], "base.png"),
])
def test_bad_parameters_are_refused_in_one_line(spec, methods, needle):
    with pytest.raises(ChexplainError, match=needle) as err:
        parse_params([spec], methods)
    assert "\n" not in str(err.value)


def test_a_parameter_given_twice_is_refused():
    with pytest.raises(ChexplainError, match="twice"):
        parse_params(["smoothgrad:n=2", "smoothgrad:n=3"], ["smoothgrad"])


def _save_png(path, array):
    from PIL import Image

    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def test_an_image_file_is_integrated_gradients_baseline(tmp_path):
    from chexplain.data.images import IMAGENET, Preprocess, read_image

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3)).eval()
    base = _save_png(tmp_path / "base.png", np.random.default_rng(0).random((20, 20)))
    x = torch.randn(2, 3, 16, 16)
    tensor = Preprocess(16, None, IMAGENET)(read_image(base))[None]
    got = Attributor(model, "integrated-gradients", IMAGENET, steps=8, baseline=str(base))(x, 1)
    want = Attributor(model, "integrated-gradients", IMAGENET, steps=8, baseline=tensor)(x, 1)
    zero = Attributor(model, "integrated-gradients", IMAGENET, steps=8)(x, 1)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, zero)
    record = params_record({"integrated-gradients": {"baseline": str(base), "steps": 8}})
    assert record["integrated-gradients"]["baseline"]["file"] == str(base)
    assert len(record["integrated-gradients"]["baseline"]["sha256"]) == 64


def test_explain_carries_the_parameters_to_the_method(tmp_path, tiny_phantom):
    from chexplain.data.images import IMAGENET, Preprocess, read_image
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.zoo import load_model

    csv, ckpt = tiny_phantom.csv, tiny_phantom.checkpoint
    image = sorted(csv.parent.rglob("view1_frontal.*"))[0]
    out = tmp_path / "out"
    argv = ["explain", str(image), "--checkpoint", str(ckpt), "--methods", "smoothgrad",
            "--classes", "Cardiomegaly", "--param", "smoothgrad:n=1", "--param",
            "smoothgrad:sigma=0", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    saved = np.load(next(out.rglob("smoothgrad/cardiomegaly.npy")))
    model = load_model(str(ckpt)).module
    x = Preprocess(32, None, IMAGENET)(read_image(image))[None]
    xg = x.clone().requires_grad_(True)
    model(xg)[0, OBSERVATIONS.index("Cardiomegaly")].backward()
    np.testing.assert_allclose(saved, xg.grad[0].sum(0).numpy(), rtol=1e-4, atol=1e-7)
    # the parameters are part of what a resumed run must repeat
    assert main(argv[:-4] + ["smoothgrad:sigma=0.2", "--out", str(out), "--resume", "--quiet"]) == 2


def test_compare_records_parameters_and_road_noise(tmp_path, tiny_phantom):
    csv, ckpt = tiny_phantom.csv, tiny_phantom.checkpoint
    out = tmp_path / "out"
    rc = main(["compare", "--checkpoint", str(ckpt), "--csv", str(csv), "--methods",
               "integrated-gradients,random", "--param", "integrated-gradients:steps=4",
               "--baseline", "road", "--road-noise", "0.05", "--patch", "8", "--steps", "2",
               "--randomisation-items", "0", "--bootstrap", "5", "--max-items", "2",
               "--out", str(out), "--quiet"])
    assert rc == 0
    saved = json.loads((out / "compare.json").read_text())
    assert saved["config"]["method_params"] == {"integrated-gradients": {"steps": 4}}
    assert saved["config"]["road_noise"] == 0.05
    assert "ROAD" in saved["perturbation"] and "0.05" in saved["perturbation"]


@pytest.mark.parametrize("extra, needle", [
    (["--param", "occlusion:window=0"], "window"),
    (["--param", "stepz=3"], "stepz"),
])
def test_audit_refuses_bad_parameters_before_any_work(tmp_path, tiny_phantom, capsys, extra, needle):
    csv, ckpt = tiny_phantom.csv, tiny_phantom.checkpoint
    out = tmp_path / "audit"
    rc = main(["audit", "--checkpoint", str(ckpt), "--csv", str(csv), "--method", "occlusion",
               "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not (out / "store").exists()


def test_compare_refuses_a_negative_road_noise(tmp_path, tiny_phantom, capsys):
    csv, ckpt = tiny_phantom.csv, tiny_phantom.checkpoint
    rc = main(["compare", "--checkpoint", str(ckpt), "--csv", str(csv), "--methods", "random",
               "--baseline", "road", "--road-noise", "-1", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and "--road-noise" in capsys.readouterr().err
