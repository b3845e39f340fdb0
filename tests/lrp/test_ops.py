"""Layer operations against PyTorch's own: the sub-pixel transposed convolution."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from chexplain.lrp import ops
from chexplain.lrp.ops import ConvOp, subpixel_transpose

CASES = [c for c in itertools.product([1, 3], [(7, 7), (5, 3), (4, 6)], [(2, 2), (2, 3), (3, 1)], [(3, 3), (0, 2)],
                                      [(9, 8), (12, 13)])
         if c[1][0] > c[3][0] and c[1][1] > c[3][1]]


@pytest.mark.parametrize("c_in, kernel, stride, padding, size", CASES)
def test_subpixel_transpose_equals_the_gradient_of_the_convolution(c_in, kernel, stride, padding, size):
    torch.manual_seed(0)
    x = torch.randn(2, c_in, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, c_in, *kernel, dtype=torch.float64)
    z = F.conv2d(x, w, stride=stride, padding=padding)
    g = torch.randn_like(z)
    (want,) = torch.autograd.grad(z, x, g)
    torch.testing.assert_close(subpixel_transpose(g, w, stride, padding, size), want, rtol=1e-12, atol=1e-12)


def test_conv_vjp_uses_the_subpixel_form_for_an_image_stem_and_matches_autograd(monkeypatch):
    calls = []
    monkeypatch.setattr(ops, "subpixel_transpose", lambda *a: calls.append(1) or subpixel_transpose(*a))
    torch.manual_seed(1)
    w = torch.randn(8, 3, 7, 7, dtype=torch.float64)
    op = ConvOp(w, None, (2, 2), (3, 3), (1, 1), 1)
    x = torch.randn(3, 3, 21, 20, dtype=torch.float64, requires_grad=True)
    z = op.forward(x)
    g = torch.randn_like(z)
    (want,) = torch.autograd.grad(z, x, g)
    torch.testing.assert_close(op.vjp(g, w, x.shape), want, rtol=1e-12, atol=1e-12)
    assert calls == [1]
    wide = torch.randn(8, 16, 7, 7, dtype=torch.float64)  # many input channels: oneDNN's transposed convolution
    op.vjp(g, wide, (3, 16, 21, 20))
    assert calls == [1]
