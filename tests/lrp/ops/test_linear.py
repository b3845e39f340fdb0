"""Layer operations against PyTorch's own: the sub-pixel transposed convolution, the stride-1
transposed convolution as a convolution, and the two-forward signed sums of αβ and z⁺."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from chexplain.lrp.ops import linear as ops
from chexplain.lrp.ops.linear import ConvOp, DenseOp, subpixel_transpose
from chexplain.lrp.rules.core import back, signed_sums, split_sign

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


@pytest.mark.parametrize("groups, kernel, padding, dims", [(1, 1, 0, 2), (2, 1, 0, 2), (6, 5, 2, 2), (6, 3, 0, 2),
                                                           (6, 3, 1, 1), (1, 3, 1, 2), (2, 3, 2, 2)])
def test_stride1_vjp_as_a_flipped_convolution_matches_autograd(monkeypatch, groups, kernel, padding, dims):
    """At stride 1, 1 × 1 and depthwise transposed convolutions run as a convolution with the
    flipped, transposed kernel (1-D and 2-D), never through conv_transpose; other kernels keep it."""
    if kernel == 1 or groups == 6:
        monkeypatch.setattr(ops.F, "conv_transpose2d", None)
        monkeypatch.setattr(ops.F, "conv_transpose1d", None)
    torch.manual_seed(groups + kernel)
    w = torch.randn(12, 6 // groups, *([kernel] * dims), dtype=torch.float64)
    op = ConvOp(w, None, (1,) * dims, (padding,) * dims, (1,) * dims, groups)
    x = torch.randn(2, 6, *([9] * dims), dtype=torch.float64, requires_grad=True)
    z = op.forward(x)
    g = torch.randn_like(z)
    (want,) = torch.autograd.grad(z, x, g)
    torch.testing.assert_close(op.vjp(g, w, x.shape), want, rtol=1e-12, atol=1e-12)
    w2 = w.clone() * 2  # another weight gets its own flipped kernel, not the cached one
    torch.testing.assert_close(op.vjp(g, w2, x.shape), 2 * want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: DenseOp(torch.randn(5, 7, dtype=torch.float64), torch.randn(5, dtype=torch.float64)),
                                  lambda: ConvOp(torch.randn(4, 2, 3, 3, dtype=torch.float64), None, 1, 1, 1, 2)])
def test_signed_sums_and_fused_back_equal_the_per_product_formulas(make):
    """Σ_i (x_i w_ij)^± from Wx and |W||x|, and Σ_j ((x_i w_ij)⁺ s_j) from one transposed op on
    [w⁺, w⁻], against the explicit products (float64); an empty side is exactly zero."""
    torch.manual_seed(3)
    op = make()
    x = torch.randn(3, 7, dtype=torch.float64) if isinstance(op, DenseOp) else torch.randn(3, 4, 6, 6, dtype=torch.float64)
    x[0] = x[0].abs()
    op.weight.data[0] = -op.weight.data[0].abs()  # output 0 of sample 0: no positive product
    xp, xn = split_sign(x)
    pos, neg = signed_sums(op, x, xp, xn)
    wp, wn = op.signed_weights()
    want_pos = op.forward_with(xp, wp, None) + op.forward_with(xn, wn, None)
    want_neg = op.forward_with(xp, wn, None) + op.forward_with(xn, wp, None)
    torch.testing.assert_close(pos, want_pos, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(neg, want_neg, rtol=1e-12, atol=1e-12)
    assert bool((pos[0, 0] == 0).all()) and bool((pos >= 0).all()) and bool((neg <= 0).all())
    s = torch.randn(3, 2, *pos.shape[1:], dtype=torch.float64)
    got = back(op, xp, xn, wp, wn, s)
    unfused = (op.vjp(s.flatten(0, 1), wp, x.shape).view(3, 2, *x.shape[1:]) * xp.unsqueeze(1)
               + op.vjp(s.flatten(0, 1), wn, x.shape).view(3, 2, *x.shape[1:]) * xn.unsqueeze(1))
    torch.testing.assert_close(got, unfused, rtol=1e-12, atol=1e-12)
