"""Models torch.fx cannot trace symbolically (their forward branches on sizes) are captured per
input shape: explained correctly (conservation, gradient × input for LRP-0 on a bias-free ReLU
net, the same model written without the branch), one graph per shape, value-dependent control
flow refused by name before any computation, the caller's model untouched."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.errors import UnsupportedModelError

PATCH = 4


class PatchNet(nn.Module):
    """Pads H and W up to a multiple of the patch, reads the token count as Python ints and the
    grid side as ``int(n ** 0.5)``: each a branch or size that symbolic tracing cannot resolve."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, PATCH, PATCH, bias=False)
        self.mix = nn.Linear(8, 8, bias=False)
        self.conv = nn.Conv2d(8, 6, 3, padding=1, bias=False)
        self.head = nn.Linear(6, classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % PATCH or w % PATCH:
            x = F.pad(x, (0, (-w) % PATCH, 0, (-h) % PATCH))
        t = F.relu(self.embed(x))
        b, c, gh, gw = t.shape
        tokens = t.reshape(b, c, gh * gw).transpose(1, 2)
        tokens = F.relu(self.mix(tokens))
        side = int(tokens.shape[1] ** 0.5)
        if side * side == tokens.shape[1]:  # a square grid: back to a map through int(n ** 0.5)
            grid = tokens.transpose(1, 2).reshape(b, c, side, side)
        else:
            grid = tokens.transpose(1, 2).reshape(b, c, gh, gw)
        return self.head(F.relu(self.conv(grid)).mean((2, 3)))


class FixedPatchNet(nn.Module):
    """``PatchNet`` for one input size, written without branches (symbolically traceable)."""

    def __init__(self, net: PatchNet, h: int, w: int) -> None:
        super().__init__()
        self.net, self.pad = net, (0, (-w) % PATCH, 0, (-h) % PATCH)
        self.grid = ((h + self.pad[3]) // PATCH, (w + self.pad[1]) // PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.relu(self.net.embed(F.pad(x, self.pad)))
        tokens = F.relu(self.net.mix(t.flatten(2).transpose(1, 2)))
        grid = tokens.transpose(1, 2).unflatten(2, self.grid)
        return self.net.head(F.relu(self.net.conv(grid)).mean((2, 3)))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.shape[-1] == 4 and x.sum() > 0:  # a size, then a value
            return self.fc(x)
        return -self.fc(x)


class ReadsValue(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)[:, : int(x.abs().max().item()) + 3]


def _net() -> PatchNet:
    torch.manual_seed(0)
    return PatchNet().double().eval()


def _gradient_x_input(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return (grad * x).detach()


def test_symbolic_tracing_fails_so_the_model_is_captured():
    lrp = chexplain.LRP(_net(), "lrp-epsilon")
    assert lrp.graph is None  # torch.fx cannot trace PatchNet: nothing symbolic to share


@pytest.mark.parametrize("size", [(14, 18), (16, 16)])
def test_lrp0_equals_gradient_times_input_and_conserves(size):
    """LRP-0 (ε → 0) on a bias-free ReLU network is gradient × input (Montavon et al. 2019, Sec.
    10.2.1); both sums equal the logit. (14, 18) takes the padding branch, (16, 16) does not."""
    model = _net()
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12).explain(x, target=3)
    oracle = _gradient_x_input(model, x, 3)
    torch.testing.assert_close(res.relevance, oracle, rtol=1e-7, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(res.logits, model(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.relevance.flatten(1).sum(1), res.logits[:, 3], rtol=1e-9, atol=1e-12)


def test_two_shapes_give_two_graphs_each_equal_to_the_unbranched_model():
    """The captured graph of each shape explains like the same model written without branches and
    traced symbolically, under a composite of several rules (ε, z⁺, flat)."""
    model = _net()
    lrp = chexplain.LRP(model, "epsilon-plus-flat")
    gen = torch.Generator().manual_seed(2)
    for h, w in [(13, 17), (12, 12)]:
        x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=gen)
        twin = chexplain.LRP(FixedPatchNet(model, h, w).eval(), "epsilon-plus-flat")
        assert twin.graph is not None  # the twin is traced symbolically
        got, want = lrp.explain(x, target="topk:2"), twin.explain(x, target="topk:2")
        torch.testing.assert_close(got.targets, want.targets)
        torch.testing.assert_close(got.relevance, want.relevance, rtol=1e-9, atol=1e-12)
    graphs = lrp._capture.graphs
    assert len(graphs) == 2
    pad_nodes = [[n for n in g.nodes if n.op is not None and "pad" in repr(n.op)] for g in graphs.values()]
    assert sorted(len(p) for p in pad_nodes) == [0, 1]  # only the 13 × 17 input is padded


def test_batch_size_is_part_of_the_captured_shape():
    model = _net()
    lrp = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    one = lrp(x[:1], target=1)
    three = lrp(x, target=1)
    assert len(lrp._capture.graphs) == 2
    torch.testing.assert_close(three[:1], one, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(three, _gradient_x_input(model, x, 1), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("model,pattern", [
    (Branchy(), r"cannot trace Branchy for inputs of shape \(2, 4\): its forward branches on tensor values in "
                r"the model's top-level forward"),
    (ReadsValue(), r"cannot trace ReadsValue for inputs of shape \(2, 4\): Tensor\.item in the model's "
                   r"top-level forward fails on a tensor without values"),
])
def test_value_dependent_control_flow_is_refused_by_name(model, pattern):
    lrp = chexplain.LRP(model.eval())  # symbolic tracing fails: the capture waits for an input's shape
    with pytest.raises(UnsupportedModelError, match=pattern) as info:
        lrp.explain(torch.randn(2, 4), target=0)
    assert "\n" not in str(info.value)


def test_an_input_that_does_not_fit_is_an_input_error():
    lrp = chexplain.LRP(_net(), "lrp-epsilon")
    with pytest.raises(chexplain.errors.InputError, match=r"an input of shape \(2, 4, 8, 8\) does not fit PatchNet: "
                                                          r"Conv2d at 'embed'") as info:
        lrp(torch.randn(2, 4, 8, 8, dtype=torch.float64), target=0)
    assert "\n" not in str(info.value)


def test_callers_model_is_unchanged():
    model = _net().train()
    state = copy.deepcopy(model.state_dict())
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        before = model.eval()(x)
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        lrp = chexplain.LRP(model, "epsilon-plus-flat")
    lrp(x, target=0)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), before, rtol=0, atol=0)


def test_timm_model_that_fx_cannot_trace_is_explained():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("mobilevit_xxs", num_classes=5).double().eval()
    lrp = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-9, stabilizer=1e-9)
    assert lrp.graph is None
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    res = lrp.explain(x, target="topk:1")
    with torch.no_grad():
        ref = model(x)
    assert float((res.logits - ref).abs().max() / ref.abs().max()) <= 1e-6
    assert bool(torch.isfinite(res.relevance).all()) and float(res.relevance.abs().sum()) > 0


class Assigns(nn.Module):
    """Scales part of a feature map by an item assignment (torch.fx proxies support none) and
    branches on a layout flag, both answered by the capture."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, bias=False)
        self.register_buffer("scale", torch.tensor([0.5, -2.0, 3.0]))
        self.head = nn.Linear(6, 4, bias=False)

    def forward(self, x):
        h = F.relu(self.conv(x)).clone()  # written into below (the clone keeps autograd's saved ReLU output)
        if not h.is_contiguous():
            h = h.contiguous()
        h[:, :3] = h[:, :3] * self.scale.view(1, 3, 1, 1)
        return self.head(h.mean((2, 3)))


def test_item_assignment_is_captured_out_of_place():
    torch.manual_seed(0)
    model = Assigns().double().eval()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    lrp = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12)
    assert lrp.graph is None
    res = lrp.explain(x, target=2)
    torch.testing.assert_close(res.relevance, _gradient_x_input(model, x, 2), rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(res.relevance.flatten(1).sum(1), res.logits[:, 2], rtol=1e-9, atol=1e-12)


def _grad_cam_by_hand(model: PatchNet, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017, Eq. 1-2) on A = relu(conv(grid)), written out with the
    branch-free twin and autograd."""
    twin = FixedPatchNet(model, *x.shape[-2:])
    t = F.relu(model.embed(F.pad(x, twin.pad)))
    tokens = F.relu(model.mix(t.flatten(2).transpose(1, 2)))
    a = F.relu(model.conv(tokens.transpose(1, 2).unflatten(2, twin.grid)))
    logits = model.head(a.mean((2, 3)))
    g, = torch.autograd.grad(logits[torch.arange(len(target)), target].sum(), a)
    return F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))


def test_grad_cam_of_a_captured_model_equals_grad_cam_by_hand():
    """Grad-CAM's default layer on a model torch.fx cannot trace symbolically: traced per input
    shape, for two input shapes (one padded), its maps equal Grad-CAM written out by hand on the
    last feature map; the caller's model keeps its parameters."""
    torch.manual_seed(0)
    model = PatchNet().eval()
    before = copy.deepcopy(model.state_dict())
    cam = chexplain.GradCAM(model, upsample=False)
    for shape in ((2, 3, 16, 16), (2, 3, 14, 18)):
        x = torch.randn(*shape)
        ours = cam(x, target=[1, 3])
        grid = (-(-shape[2] // PATCH), -(-shape[3] // PATCH))
        assert ours.shape == (2, *grid) and ours.abs().sum() > 0
        torch.testing.assert_close(ours, _grad_cam_by_hand(model, x, [1, 3]), rtol=1e-5, atol=1e-7)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
