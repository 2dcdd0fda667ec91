"""SeqFakeFormer's transformer: a DETR-style pre-norm encoder over image features and a causal decoder whose
cross-attention is spatially enhanced (SECA, after SMCA): each query predicts, per head, a point on the feature grid and
a per-axis scale, and a Gaussian-shaped term around that point is added to the attention logits before the softmax.

Tensors are batch-first: features (B, HW, C), tokens (B, L, C).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class PositionEmbeddingSine(nn.Module):
    """DETR's sine/cosine encoding of (y, x), ``num_pos_feats`` channels per axis, coordinates normalised to [0, 2π]
    over the valid (unpadded) part of each image, so padding does not shift the positions of real pixels."""

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0, normalize: bool = True,
                 scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats, self.temperature, self.normalize, self.scale = num_pos_feats, temperature, normalize, scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` (B, H, W), True on padding → (B, 2·num_pos_feats, H, W)."""
        valid = (~mask).float()
        y = valid.cumsum(1)
        x = valid.cumsum(2)
        if self.normalize:
            eps = 1e-6
            y = (y - 0.5) / (y[:, -1:, :] + eps) * self.scale
            x = (x - 0.5) / (x[:, :, -1:] + eps) * self.scale
        d = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        d = self.temperature ** (2 * (d // 2) / self.num_pos_feats)
        px, py = x[..., None] / d, y[..., None] / d
        # even channels sine, odd channels cosine, interleaved
        px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
        py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class Attention(nn.Module):
    """Multi-head attention that also takes an additive per-head bias on the logits (what SECA needs and
    ``nn.MultiheadAttention`` cannot take per batch element and head)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        # A list while someone looks (``explain sequence``): each call appends its (B, heads, Lq, Lk) weights, computed
        # beside SDPA, which returns none. None otherwise: training and inference pay nothing.
        self.recorded: list[torch.Tensor] | None = None

    def forward(self, q, k, v, *, bias=None, attn_mask=None, key_padding_mask=None) -> torch.Tensor:
        """q (B, Lq, C), k/v (B, Lk, C); bias (B, heads, Lq, Lk) float; attn_mask (Lq, Lk) and
        key_padding_mask (B, Lk) bool, True where attention is forbidden."""
        b, lq, c = q.shape
        lk = k.shape[1]
        split = lambda t, n: t.view(b, n, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(q), lq), split(self.k_proj(k), lk), split(self.v_proj(v), lk)
        logits_bias = None
        if bias is not None or attn_mask is not None or key_padding_mask is not None:
            logits_bias = q.new_zeros(b, 1, lq, lk) if bias is None else bias
            forbid = torch.zeros(1, 1, lq, lk, dtype=torch.bool, device=q.device)
            if attn_mask is not None:
                forbid = forbid | attn_mask[None, None]
            if key_padding_mask is not None:
                forbid = forbid | key_padding_mask[:, None, None, :]
            logits_bias = logits_bias.to(q.dtype).masked_fill(forbid, float("-inf"))  # SDPA wants q's dtype (AMP)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=logits_bias,
                                             dropout_p=self.dropout if self.training else 0.0)
        if self.recorded is not None:
            self.recorded.append(attention_weights(q, k, logits_bias).detach())
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, c))


def attention_weights(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """softmax(q kᵀ / √d + bias): the weights ``scaled_dot_product_attention`` applies (without dropout)."""
    logits = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    return (logits if bias is None else logits + bias).float().softmax(-1)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class EncoderLayer(nn.Module):
    """Pre-norm: LayerNorm before each sub-layer, residual around it; positions added to queries and keys only."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, pos, key_padding_mask=None):
        h = self.norm1(x)
        x = x + self.drop1(self.self_attn(h + pos, h + pos, h, key_padding_mask=key_padding_mask))
        return x + self.drop2(self.ffn(self.norm2(x)))


def seca_bias(point: torch.Tensor, scale: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The SECA logit term −Σ_axis scale·(point − grid)² / 4.

    point, scale: (B, Lq, heads, 2) in grid units (x, y); grid: (HW, 2) cell coordinates → (B, heads, Lq, HW).
    """
    d2 = (point[:, :, :, None, :] - grid[None, None, None]) ** 2  # (B, Lq, heads, HW, 2)
    return -(d2 * scale[:, :, :, None, :]).sum(-1).permute(0, 2, 1, 3) / 4


def feature_grid(h: int, w: int, device=None) -> torch.Tensor:
    """(HW, 2) centres (x + 0.5, y + 0.5) of the cells of an h×w map, row-major like ``flatten(2)``."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + 0.5,
                            torch.arange(w, device=device, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack((xs, ys), -1).view(-1, 2)


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: causal self-attention, SECA cross-attention to the encoder memory, feed-forward.

    Layer 0 predicts the reference point (MLP + sigmoid, scaled to the grid) and passes it on; every layer adds its own
    per-head offsets and per-head, per-axis scales (squared, so always ≥ 0; start at 1 so the prior starts as a plain
    Gaussian of fixed width).
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, first: bool):
        super().__init__()
        self.heads = heads
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_attn = Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.point = MLP(dim, dim, 2, 3) if first else None
        self.offset = nn.Linear(dim, 2 * heads)
        self.scale = nn.Linear(dim, 2 * heads)

    def reset_seca(self) -> None:
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)

    def forward(self, tgt, memory, *, pos, query_pos, grid, grid_size, ref=None, tgt_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None):
        h = self.norm1(tgt)
        q = h + query_pos
        tgt = tgt + self.drop1(self.self_attn(q, q, h, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask))

        query = self.norm2(tgt) + query_pos
        b, lq, _ = query.shape
        if self.point is not None:
            ref = self.point(query).sigmoid() * grid_size  # (B, Lq, 2) in grid units (x, y)
        point = ref[:, :, None, :] + self.offset(query).view(b, lq, self.heads, 2)
        scale = self.scale(query).view(b, lq, self.heads, 2) ** 2
        bias = seca_bias(point, scale, grid)
        tgt = tgt + self.drop2(self.cross_attn(query, memory + pos, memory, bias=bias,
                                               key_padding_mask=memory_key_padding_mask))
        return tgt + self.drop3(self.ffn(self.norm3(tgt))), ref


class Transformer(nn.Module):
    """``encode`` once per image, ``decode`` once per step (generation reuses the memory)."""

    def __init__(self, dim: int = 256, heads: int = 4, num_encoder_layers: int = 2, num_decoder_layers: int = 2,
                 ffn_dim: int = 512, dropout: float = 0.1):
        super().__init__()
        self.encoder = nn.ModuleList(EncoderLayer(dim, heads, ffn_dim, dropout) for _ in range(num_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim, dropout, first=i == 0)
                                     for i in range(num_decoder_layers))
        # pre-norm leaves the residual stream un-normalised: normalise once at the end of each stack (as DETR)
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.decoder:
            layer.reset_seca()

    def encode(self, src: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> dict:
        """src, pos (B, C, H, W), mask (B, H, W) → the memory and what the decoder needs to read it."""
        b, c, h, w = src.shape
        x, pos = src.flatten(2).transpose(1, 2), pos.flatten(2).transpose(1, 2)
        mask = mask.flatten(1)
        for layer in self.encoder:
            x = layer(x, pos, key_padding_mask=mask)
        return {"memory": self.encoder_norm(x), "pos": pos, "mask": mask, "grid": feature_grid(h, w, src.device),
                "grid_size": src.new_tensor([w, h])}

    def decode(self, tgt: torch.Tensor, query_pos: torch.Tensor, enc: dict, *, tgt_mask=None,
               tgt_key_padding_mask=None) -> torch.Tensor:
        """tgt (B, L, C) embedded tokens, query_pos (L, C) → (B, L, C)."""
        ref = None
        for layer in self.decoder:
            tgt, ref = layer(tgt, enc["memory"], pos=enc["pos"], query_pos=query_pos[None], grid=enc["grid"],
                             grid_size=enc["grid_size"], ref=ref, tgt_mask=tgt_mask,
                             tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=enc["mask"])
        return self.decoder_norm(tgt)
