"""SeqFakeFormer (Shao, Wu, Liu, ECCV 2022): backbone → 1×1 conv to 256 → sine positions → transformer → MLP head.

The decoder reads the caption of the manipulation sequence (``captions.py``) and predicts its next token at every
position. ``generate`` decodes greedily; unlike the official evaluation (one whole-model pass per step at batch 1) it
runs the backbone and encoder once per batch and decodes the whole batch step by step on the cached memory.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from backbonekit.models.backbone import create_backbone
from backbonekit.models.captions import (EOS, MAX_EDITS, NUM_POSITIONS, PAD, SOS, VOCAB_SIZE, causal_mask, padding_mask,
                                         tokens_to_labels)
from backbonekit.models.registry import imagenet_cfg, register_model
from backbonekit.models.transformer import MLP, PositionEmbeddingSine, Transformer


class TokenEmbedding(nn.Module):
    """Token + learned position embedding, LayerNorm, dropout. The 6 learned positions also serve as the
    decoder's query positions, added again before every attention."""

    def __init__(self, dim: int, vocab_size: int = VOCAB_SIZE, positions: int = NUM_POSITIONS, dropout: float = 0.1):
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.position = nn.Embedding(positions, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.drop(self.norm(self.word(tokens) + self.position.weight[: tokens.shape[1]]))


class SeqFakeFormer(nn.Module):
    def __init__(self, backbone: nn.Module, *, dim: int = 256, heads: int = 4, num_encoder_layers: int = 2,
                 num_decoder_layers: int = 2, ffn_dim: int = 512, dropout: float = 0.1, num_classes: int = VOCAB_SIZE):
        super().__init__()
        self.backbone = backbone
        self.input_proj = nn.Conv2d(backbone.channels[-1], dim, kernel_size=1)
        self.position = PositionEmbeddingSine(dim // 2)
        self.transformer = Transformer(dim, heads, num_encoder_layers, num_decoder_layers, ffn_dim, dropout)
        self.embed = TokenEmbedding(dim, num_classes, NUM_POSITIONS, dropout)
        self.head = MLP(dim, 512, num_classes, 3)
        self.feature_info = backbone.feature_info[-1:]  # the level the transformer reads

    def encode(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """Backbone + encoder: the memory every decoding step reads. ``mask`` (B, H, W) True on padding."""
        if mask is None:
            feature = self.backbone(images)[-1]
            mask = torch.zeros(feature.shape[0], *feature.shape[-2:], dtype=torch.bool, device=feature.device)
        else:
            feature, mask = self.backbone.forward_masked(images, mask)[-1]
        return self.transformer.encode(self.input_proj(feature), mask, self.position(mask).to(feature.dtype))

    def decode(self, enc: dict, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder input tokens (B, L ≤ 6) → logits (B, L, vocab)."""
        length = tokens.shape[1]
        hs = self.transformer.decode(self.embed(tokens), self.embed.position.weight[:length], enc,
                                     tgt_mask=causal_mask(length, tokens.device),
                                     tgt_key_padding_mask=padding_mask(tokens))
        return self.head(hs)

    def forward(self, images: torch.Tensor, decoder_input: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: ``decoder_input`` from ``captions.decoder_io`` → logits (B, 6, vocab).

        Without ``decoder_input`` the decoder reads SOS then PAD: the first step of decoding (one full pass, what
        model summaries and benchmarks time)."""
        if decoder_input is None:
            decoder_input = torch.full((images.shape[0], NUM_POSITIONS), PAD, dtype=torch.long, device=images.device)
            decoder_input[:, 0] = SOS
        return self.decode(self.encode(images, mask), decoder_input)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, mask: torch.Tensor | None = None, early_stop: bool = True) -> torch.Tensor:
        """Greedy decoding of a batch → labels (B, 5): edit ids in order, 0 after the sequence ends.

        Each step re-runs only the (6-token) decoder; the causal mask makes positions after the current one irrelevant,
        so the PAD placeholders there change nothing. A sequence stops at its first non-edit token (normally EOS).
        ``early_stop=False`` always runs the 5 steps (same result; a graph without data-dependent control flow, for
        export).
        """
        enc = self.encode(images, mask)
        b = images.shape[0]
        tokens = torch.full((b, NUM_POSITIONS), PAD, dtype=torch.long, device=images.device)
        tokens[:, 0] = SOS
        done = torch.zeros(b, dtype=torch.bool, device=images.device)
        for step in range(MAX_EDITS):
            next_token = self.decode(enc, tokens)[:, step].argmax(-1)
            next_token = torch.where(done, torch.full_like(next_token, PAD), next_token)
            done = done | (next_token < 1) | (next_token >= EOS)
            tokens[:, step + 1] = torch.where(done, torch.full_like(next_token, PAD), next_token)
            if early_stop and done.all():
                break
        return tokens_to_labels(tokens[:, 1:])

    @torch.no_grad()
    def generate_naive(self, image: torch.Tensor) -> torch.Tensor:
        """The official procedure, for comparison: one whole-model pass per step, one image (1, 3, H, W) → (1, 5)."""
        tokens = torch.full((1, NUM_POSITIONS), PAD, dtype=torch.long, device=image.device)
        tokens[:, 0] = SOS
        for step in range(MAX_EDITS):
            next_token = int(self(image, tokens)[0, step].argmax())
            if not 1 <= next_token < EOS:
                break
            tokens[0, step + 1] = next_token
        return tokens_to_labels(tokens[:, 1:])


def _default_level(backbone: str) -> int | None:
    # EfficientNet: the head conv (1792 channels for B4), what the reference's lukemelas ``extract_features`` returns.
    # Others (ResNet): None = the backbone's deepest level (layer4, dilated to stride 16).
    return 7 if "efficientnet" in backbone else None


# The official training normalises with 0.5/0.5 whatever the backbone.
@register_model(cfg=imagenet_cfg(256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0, classifier=None,
                                 task="sequence"))
def seqfakeformer(backbone: str = "resnet50", num_classes: int = VOCAB_SIZE, *, out_index: int | None = None,
                  dilation: bool | None = None, frozen_bn: bool = False, trainable_stages: int | None = None,
                  pretrained_backbone=None, **kwargs) -> SeqFakeFormer:
    """SeqFakeFormer over any backbonekit backbone. ResNets get a dilated last stage by default (stride 16: 16×16
    tokens at 256²); ``out_index`` picks the backbone level (default: EfficientNet head conv, else the deepest)."""
    if dilation is None:
        dilation = "res" in backbone
    if out_index is None:
        out_index = _default_level(backbone)
    body = create_backbone(backbone, out_indices=None if out_index is None else (out_index,), dilation=dilation,
                           frozen_bn=frozen_bn, trainable_stages=trainable_stages, pretrained=pretrained_backbone)
    return SeqFakeFormer(body, num_classes=num_classes, **kwargs)
