"""Small configurations of the attention families (torchvision and timm), random weights.

Each factory builds the family's own class with few layers and channels, for 32-px inputs: the
code paths (class token, position embedding, fused/explicit attention, shifted windows with
masks and relative position bias, patch merging, MaxViT's block/grid partitions) are the full
models'; only the sizes are small. Shared by the Grad-CAM and the LRP tests.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

SIZE = 32


def _randomise_head(model: nn.Module, head: nn.Linear) -> nn.Module:
    """torchvision's ViT zero-initialises its head: every gradient would be zero."""
    with torch.no_grad():
        head.weight.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(0))
    return model


def tv_vit() -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    m = VisionTransformer(image_size=SIZE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5)
    return _randomise_head(m, m.heads.head)


def tv_swin(v2: bool = False) -> nn.Module:
    from torchvision.models import swin_transformer as st

    extra = dict(block=st.SwinTransformerBlockV2, downsample_layer=st.PatchMergingV2) if v2 else {}
    return st.SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[2, 2],
        stochastic_depth_prob=0.0, num_classes=5, **extra,
    )  # fmt: skip


def tv_maxvit() -> nn.Module:
    from torchvision.models.maxvit import MaxVit

    return MaxVit(
        input_size=(SIZE, SIZE), stem_channels=8, partition_size=2, block_channels=[8, 16], block_layers=[1, 1],
        head_dim=4, stochastic_depth_prob=0.0, num_classes=5,
    )  # fmt: skip


def tv_convnext() -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=5)


def timm_vit(name: str = "vit_small_patch16_224", **kw) -> nn.Module:
    import timm

    return timm.create_model(
        name, pretrained=False, num_classes=5, img_size=SIZE, patch_size=8, embed_dim=16, depth=2, num_heads=2, **kw
    )


def timm_deit() -> nn.Module:
    return timm_vit("deit_tiny_patch16_224")


def timm_swin() -> nn.Module:
    import timm

    return timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, num_classes=5, img_size=SIZE, embed_dim=16,
        depths=(2, 2), num_heads=(2, 2), window_size=2,
    )  # fmt: skip


ZOO: dict[str, Callable[[], nn.Module]] = {
    "tv_vit": tv_vit,
    "tv_swin": tv_swin,
    "tv_swin_v2": lambda: tv_swin(v2=True),
    "tv_maxvit": tv_maxvit,
    "timm_vit": timm_vit,
    "timm_deit": timm_deit,
    "timm_swin": timm_swin,
}
