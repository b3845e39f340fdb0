"""The public API: targets, batching, dtype/device, the caller's model left untouched, errors."""

import copy
import warnings

import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.errors import ChexplainError, InputError, TargetError, UnsupportedModelError

from .models import FunctionalHeadDenseNet, SmallResCNN, lenet_avg, randomize_batchnorm, small_densenet


@pytest.fixture(scope="module")
def densenet():
    torch.manual_seed(0)
    return randomize_batchnorm(small_densenet(6)).eval()


def test_batched_equals_per_sample(densenet):
    x = torch.randn(3, 3, 32, 32)
    lrp = chexplain.LRP(densenet, "epsilon-alpha2beta1-flat")
    batch = lrp(x, target=torch.tensor([0, 4, 2]))
    assert batch.shape == x.shape
    for i, t in enumerate([0, 4, 2]):
        torch.testing.assert_close(batch[i], lrp(x[i:i + 1], target=t)[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("preset", ["lrp-epsilon", "epsilon-plus-flat", "lrp-alpha2beta1", "lrp-zplus"])
def test_all_targets_equal_the_per_class_loop(densenet, preset):
    x = torch.randn(2, 3, 32, 32)
    lrp = chexplain.LRP(densenet, preset)
    every = lrp(x, target="all")
    assert every.shape == (2, 6, 3, 32, 32)
    for c in range(6):
        torch.testing.assert_close(every[:, c], lrp(x, target=c), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("preset", ["epsilon-gamma-box", "lrp-alpha2beta1", "lrp-zplus", "epsilon-plus-flat"])
def test_target_chunks_give_the_same_result(densenet, preset):
    """Targets processed in chunks (each layer's R-independent part shared) equal one pass."""
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    model = copy.deepcopy(densenet).double()
    kw = {"low": -3.0, "high": 3.0} if "box" in preset else {}
    one = chexplain.LRP(model, preset, target_chunk=6, **kw).explain(x, target="all", report=True)
    for chunk in (1, 4):
        lrp = chexplain.LRP(model, preset, target_chunk=chunk, **kw)
        res = lrp.explain(x, target="all", report=True)
        torch.testing.assert_close(res.relevance, one.relevance, rtol=1e-12, atol=1e-12)
        assert [r.name for r in res.report.layers] == [r.name for r in one.report.layers]
        for a, b in zip(res.report.layers, one.report.layers):
            torch.testing.assert_close(a.relevance_in, b.relevance_in, rtol=1e-12, atol=1e-12)
        assert res.report.layers[0].relevance_out.shape == (2, 6)
    torch.testing.assert_close(lrp(x, target=3), one.relevance[:, 3], rtol=1e-12, atol=1e-12)


def test_explain_under_inference_mode(densenet):
    """Average poolings transpose with autograd: that must work inside torch.inference_mode too."""
    x = torch.randn(2, 3, 32, 32)
    want = chexplain.LRP(densenet, "epsilon-plus-flat", target_chunk=6)(x, target="all")
    for chunk in (6, 4):
        with torch.inference_mode():
            got = chexplain.LRP(densenet, "epsilon-plus-flat", target_chunk=chunk)(x, target="all")
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_target_forms(densenet):
    x = torch.randn(2, 3, 32, 32)
    lrp = chexplain.LRP(densenet, "lrp-epsilon")
    res = lrp.explain(x, classes=[5, 1])
    assert res.relevance.shape == (2, 2, 3, 32, 32)
    assert res.targets.tolist() == [[5, 1], [5, 1]]
    top = lrp.explain(x, target="topk:3")
    assert top.targets.tolist() == res.logits.topk(3, dim=1).indices.tolist()
    torch.testing.assert_close(top.relevance[:, 0], lrp(x), rtol=0, atol=0)  # default: the top class
    torch.testing.assert_close(lrp(x, target=[1, 1]), lrp(x, target=1), rtol=0, atol=0)


def test_relevance_of_a_target_sums_to_about_its_logit(densenet):
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    res = chexplain.LRP(densenet.double(), "lrp-epsilon").explain(x, target="all", report=True)
    densenet.float()
    total = res.report.input_relevance + res.report.absorbed
    torch.testing.assert_close(total, res.logits, rtol=1e-9, atol=1e-9)


def test_result_has_input_dtype_and_device(densenet):
    for dtype in (torch.float32, torch.float64):
        R = chexplain.explain(densenet, torch.randn(1, 3, 32, 32, dtype=dtype), method="lrp-epsilon", target=0)
        assert R.dtype == dtype and R.device.type == "cpu"


def _state(model):
    return (copy.deepcopy(model.state_dict()), model.training,
            [(name, dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
             for name, m in model.named_modules()],
            [p.requires_grad for p in model.parameters()])


def _assert_same(model, before):
    after = _state(model)
    assert before[0].keys() == after[0].keys()
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k]), k
    assert before[1:] == after[1:]


def test_model_is_untouched_even_after_an_exception():
    torch.manual_seed(1)
    model = randomize_batchnorm(FunctionalHeadDenseNet(num_classes=5))  # training mode, in-place ReLUs
    calls = []
    model.features.norm0.register_forward_hook(lambda *a: calls.append(1))
    before = _state(model)
    x = torch.randn(2, 1, 40, 40)
    with pytest.warns(UserWarning, match="training mode"):
        R = chexplain.explain(model, x, method="epsilon-gamma-box", target=2, low=-3.0, high=3.0)
    assert R.shape == x.shape and bool(torch.isfinite(R).all())
    _assert_same(model, before)
    assert calls == []  # the caller's hooks were not run by the explanation
    with pytest.warns(UserWarning), pytest.raises(TargetError):
        chexplain.explain(model, x, method="lrp-epsilon", target=9)  # raised after the forward pass
    _assert_same(model, before)
    assert model.training


def test_training_mode_is_explained_in_eval_mode():
    torch.manual_seed(2)
    model = randomize_batchnorm(nn.Sequential(*lenet_avg()[:-1], nn.Dropout(0.5), lenet_avg()[-1]))
    x = torch.randn(2, 1, 28, 28)
    with pytest.warns(UserWarning, match="eval mode"):
        a = chexplain.explain(model, x, method="lrp-epsilon", target=1)
    b = chexplain.explain(copy.deepcopy(model).eval(), x, method="lrp-epsilon", target=1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_final_sigmoid_is_skipped_with_a_warning():
    torch.manual_seed(3)
    base = lenet_avg().eval()
    with_sigmoid = nn.Sequential(*base, nn.Sigmoid()).eval()
    x = torch.randn(2, 1, 28, 28)
    with pytest.warns(UserWarning, match="explains the logits before it"):
        a = chexplain.explain(with_sigmoid, x, method="lrp-epsilon", target=4)
    torch.testing.assert_close(a, chexplain.explain(base, x, method="lrp-epsilon", target=4), rtol=0, atol=0)


class _Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1)


class _Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), _Cumsum())
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.block(x))


class _Quotient(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.a(x) / self.b(x)


class _BatchCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.cat([x, x], 0))


class _FlagSetter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.fc(x)
        h.requires_grad_()  # an in-place method that changes no value
        return h


def _one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize("model,pattern", [
    (_Unknown(), r"unsupported operation torch\.cumsum at 'block\.1'"),
    (_Quotient(), r"unsupported operation _operator\.truediv in the model's top-level forward"),
    (_BatchCat(), r"cat in the model's top-level forward concatenates along the batch dimension"),
    (_FlagSetter(), r"unsupported operation Tensor\.requires_grad_ in the model's top-level forward"),
])
def test_unsupported_models_raise_before_computing(model, pattern):
    with pytest.raises(UnsupportedModelError, match=pattern) as info:
        chexplain.LRP(model.eval())
    _one_line(info)


@pytest.mark.parametrize("x,target,pattern", [
    (torch.randn(2, 3, 16, 16), 7, r"target class 7 is out of range: the model has 5 outputs"),
    (torch.randn(2, 3, 16, 16), [0, 1, 2], r"per-sample target needs 2 entries"),
    (torch.randn(2, 3, 16, 16), "topk:9", r"K must be between 1 and 5"),
    (torch.randn(2, 3, 16, 16), "best", r"unknown target 'best'"),
    (torch.randn(2, 4, 16, 16), 0, r"does not fit layer 'conv1'"),
    (torch.randint(0, 9, (2, 3, 16, 16)), 0, r"floating-point tensor, got dtype torch.int64"),
    (torch.full((1, 3, 16, 16), float("nan")), 0, r"NaN"),
    ([[1.0]], 0, r"must be a torch.Tensor"),
])
def test_bad_inputs_give_one_line_errors(x, target, pattern):
    model = SmallResCNN().eval()
    with pytest.raises(ChexplainError, match=pattern) as info:
        chexplain.explain(model, x, method="lrp-epsilon", target=target)
    _one_line(info)


@pytest.mark.parametrize("method,params,pattern", [
    ("lrp-magic", {}, r"unknown method 'lrp-magic'; choose from lrp-z, .*gradcam.*occlusion$"),
    ("lrp-z", {"gamma": 0.25}, r"lrp-z has no parameter 'gamma'"),
    ("lrp-alpha2beta1", {"alpha": 2.0, "beta": 2.0}, r"alpha - beta = 1"),
    ("epsilon-gamma-box", {}, r"needs the input bounds low= and high="),
])
def test_bad_methods_give_one_line_errors(method, params, pattern):
    with pytest.raises(ChexplainError, match=pattern) as info:
        chexplain.explain(SmallResCNN().eval(), torch.randn(1, 3, 16, 16), method=method, **params)
    _one_line(info)


def test_wrong_device_is_refused():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU to put the model and the input on different devices")
    with pytest.raises(InputError, match="is on cpu but the model is on cuda"):
        chexplain.explain(SmallResCNN().eval().cuda(), torch.randn(1, 3, 16, 16), method="lrp-epsilon")


def test_functional_ops_get_rules():
    """The functional head (F.relu, F.adaptive_avg_pool2d, view) conserves relevance: no leak."""
    torch.manual_seed(4)
    model = randomize_batchnorm(FunctionalHeadDenseNet(num_classes=4), zero_shift=True).double().eval()
    nn.init.zeros_(model.classifier.bias)
    x = torch.randn(2, 1, 40, 40, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12).explain(x, target="all")
    torch.testing.assert_close(res.relevance.flatten(2).sum(-1), res.logits, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("preset", ["epsilon-plus-flat", "lrp-zplus", "epsilon-gamma-box", "lrp-epsilon"])
def test_memory_saving_paths_change_nothing(monkeypatch, preset):
    """ReLUs run in place after layers whose rule never reads z and the last relevance pass
    frees what it is done with: the maps and the per-layer report are bit-for-bit those of the
    plain path (float64 ResNet-18, several targets)."""
    import torchvision

    import chexplain.lrp.engine as engine

    torch.manual_seed(0)
    model = randomize_batchnorm(torchvision.models.resnet18(num_classes=5)).eval().double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    kw = {"low": -3.0, "high": 3.0} if "box" in preset else {}
    lrp = chexplain.LRP(model, preset, **kw)
    inplace = lrp._prepared(x).inplace
    # z⁺ / flat / z^B never read a layer's output: every ReLU after a convolution may overwrite it
    # (γ and ε read it: only the stem's ReLU after z^B for epsilon-gamma-box, none for lrp-epsilon)
    assert len(inplace) == {"lrp-epsilon": 0, "epsilon-gamma-box": 1}.get(preset, 9), sorted(inplace)
    got = lrp.explain(x, target="all", report=True)
    monkeypatch.setattr(engine, "inplace_relus", lambda graph, reads: set())
    monkeypatch.setattr(engine, "_drop", lambda values, states, name: None)
    plain = chexplain.LRP(model, preset, **kw).explain(x, target="all", report=True)
    torch.testing.assert_close(got.relevance, plain.relevance, rtol=0, atol=0)
    for a, b in zip(got.report.layers, plain.report.layers):
        torch.testing.assert_close(a.relevance_in, b.relevance_in, rtol=0, atol=0)
