"""SeqFakeFormer's tokens, and teacher forcing: a label becomes a caption, the caption the decoder's input and target.

``[1, 2, 4, 0, 0]`` → caption ``[SOS, 1, 2, 4, EOS, PAD, PAD]`` = ``[0, 1, 2, 4, 6, 7, 7]``;
input = caption[:-1] with EOS replaced by PAD (EOS is only ever predicted, never read) = ``[0, 1, 2, 4, 7, 7]``;
target = caption[1:] = ``[1, 2, 4, 6, 7, 7]``. The loss ignores PAD targets.
"""
from __future__ import annotations

import torch

MAX_EDITS = 5
SOS, EOS, PAD = 0, 6, 7  # SOS shares id 0 with NA: it is only ever the first decoder input, never a target
VOCAB_SIZE = 8
NUM_POSITIONS = MAX_EDITS + 1  # decoder length: SOS + 5 edits (targets: 5 edits + EOS)


def build_captions(labels: torch.Tensor) -> torch.Tensor:
    """(B, 5) labels → (B, 7) captions."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.ndim == 1:
        labels = labels[None]
    b = labels.shape[0]
    length = (labels != 0).long().cumprod(1).sum(1)  # edits before the first 0
    pos = torch.arange(MAX_EDITS, device=labels.device)[None]
    body = torch.where(pos < length[:, None], labels, torch.full_like(labels, PAD))
    caption = torch.cat([torch.full((b, 1), SOS, dtype=torch.long, device=labels.device), body,
                         torch.full((b, 1), PAD, dtype=torch.long, device=labels.device)], 1)
    caption.scatter_(1, (length + 1)[:, None], EOS)  # EOS right after the last edit
    return caption


def decoder_io(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 5) labels → decoder input (B, 6) and target (B, 6)."""
    caption = build_captions(labels)
    inputs = caption[:, :-1].masked_fill(caption[:, :-1] == EOS, PAD)
    return inputs, caption[:, 1:]


def causal_mask(length: int, device=None) -> torch.Tensor:
    """(L, L) bool, True where attention is forbidden: position i sees only positions ≤ i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def padding_mask(inputs: torch.Tensor) -> torch.Tensor:
    """(B, L) bool, True on PAD tokens (keys nobody may attend to)."""
    return inputs == PAD


def tokens_to_labels(tokens: torch.Tensor) -> torch.Tensor:
    """Predicted tokens (B, ≥5) → labels (B, 5): the edit ids (1..5) up to the first token that is not an edit.

    EOS ends a sequence; so do NA/SOS and PAD, which a trained model should not emit mid-sequence.
    """
    tokens = tokens[:, :MAX_EDITS]
    is_edit = (tokens >= 1) & (tokens < EOS)
    # "every token so far is an edit", position by position (a running AND; cumprod has no ONNX export)
    keep = [is_edit[:, 0]]
    for i in range(1, tokens.shape[1]):
        keep.append(keep[-1] & is_edit[:, i])
    return torch.where(torch.stack(keep, 1), tokens, torch.zeros_like(tokens))
