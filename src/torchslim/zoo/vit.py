"""A small Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

Patch embedding by a strided Conv2d, a learned class token and position embedding, pre-norm
blocks x + MHSA(LN(x)), x + MLP(LN(x)) with GELU, final LayerNorm and a Linear head on the
class token. Attention keeps q, k, v and the output projection as separate ``nn.Linear``s
and reads the head size as ``q.out_features // num_heads`` at forward time, so removing
whole heads only needs the Linears sliced and ``num_heads`` updated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.errors import UserError
from torchslim.zoo.image_size import check_image_size
from torchslim.zoo.registry import register_model


class Attention(nn.Module):
    """Multi-head self-attention, (N, T, dim) -> (N, T, dim)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head_dim = self.q.out_features // self.num_heads
        # (N, T, H*hd) -> (N, H, T, hd)
        q = self.q(x).unflatten(-1, (self.num_heads, head_dim)).transpose(1, 2)
        k = self.k(x).unflatten(-1, (self.num_heads, head_dim)).transpose(1, 2)
        v = self.v(x).unflatten(-1, (self.num_heads, head_dim)).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(hd)) v
        return self.proj(out.transpose(1, 2).flatten(2))


class Mlp(nn.Module):
    """Linear(dim, hidden) - GELU - Linear(hidden, dim)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block, (N, T, dim) -> (N, T, dim)."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """(N, C, S, S) -> (N, num_classes) with (S / patch)^2 + 1 tokens."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, num_heads, int(dim * mlp_ratio)) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, dim, h, w) -> (N, h*w, dim)
        cls = self.cls_token.expand(x.size(0), -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register_model(
    "vit",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="Small ViT (patch 4, dim 64, depth 4, 4 heads, MLP ratio 2) for 32x32",
)
def vit(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    patch_size: int = 4,
    dim: int = 64,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 2.0,
) -> nn.Module:
    check_image_size("vit", image_size, minimum=patch_size, multiple=patch_size)
    if dim % num_heads:
        raise UserError(f"model 'vit': dim ({dim}) must be divisible by num_heads ({num_heads})")
    return VisionTransformer(
        in_channels, num_classes, image_size, patch_size, dim, depth, num_heads, mlp_ratio
    )
