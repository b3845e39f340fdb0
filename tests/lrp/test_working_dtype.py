"""Values computed from constants alone (rotary angles of DINOv3, built from a buffer and the
input's size, cast to the buffer's dtype as it was when traced) run in the graph's working dtype,
as the constants they come from do: a model in float64 is captured (its shape pass runs in
float32) and explained."""

import pytest
import torch
import torch.nn as nn

import chexplain


class RotaryScale(nn.Module):
    """x · cos(position / period), the angles cast to the periods' dtype, then a dense layer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("periods", torch.tensor([1.0, 2.0, 4.0]))
        self.head = nn.Linear(3 * 5, 4, bias=False)

    def forward(self, x):  # (N, 3, L)
        pos = torch.arange(x.shape[-1], dtype=torch.float32).to(dtype=self.periods.dtype)
        angles = pos[None, :] / self.periods[:, None]
        return self.head((x * angles.cos()).flatten(1))


def test_constant_computation_follows_the_working_dtype():
    torch.manual_seed(0)
    model = RotaryScale().double().eval()
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    target = torch.tensor([0, 2])
    got = chexplain.explain(model, x, method="lrp-z", target=target)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg)[torch.arange(2), target].sum(), xg)
    want = grad * x  # a linear map without bias: LRP-0 is gradient × input
    assert want.abs().max() > 1e-3
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-10


def test_dinov3_rotary_vit_explains_in_float64():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_dinov3_qkvb", pretrained=False, num_classes=3, img_size=32,
                              depth=2).double().eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    expl = chexplain.LRP(model, "lrp-epsilon").explain(x, target=torch.tensor([1]))
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(expl.logits, logits, rtol=1e-10, atol=1e-12)
    assert expl.relevance.shape == (1, 3, 32, 32) and bool(torch.isfinite(expl.relevance).all())
    assert expl.relevance.abs().sum() > 0
