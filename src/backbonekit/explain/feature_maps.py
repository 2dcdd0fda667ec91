"""What each level of a backbone computes for one image: the first channels of every stage's activations, one row
per level (the stem's edges and colours first, the last stage's coarse class evidence at the bottom)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from backbonekit.explain.layers import level_labels
from backbonekit.explain.overlay import to_rgb_array
from backbonekit.io.figures import save_figure


def level_activations(backbone: nn.Module, normalised: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
    """The (C, h, w) output of every level of ``backbone`` (a model with ``forward_levels``) for one normalised
    image (1, 3, H, W)."""
    with torch.inference_mode():
        return [level[0].float().cpu() for level in backbone.forward_levels(normalised, last=last)]


def feature_map_file(backbone: nn.Module, image: torch.Tensor, normalize: nn.Module, path: str | Path,
                     channels: int, last: int | None = None) -> Path:
    """The grid of ``save_feature_maps`` for one uint8 (3, H, W) ``image`` as the task feeds it to ``backbone``
    (``normalize``: the task's input normalisation), levels 0..``last`` (a detector's or sequence model's backbone
    stops at the level it feeds on: the ones after are dropped), rows labelled with each level's name."""
    weight = next(backbone.parameters())
    levels = level_activations(backbone, normalize(image[None].to(weight.device)), last)
    return save_feature_maps(levels, to_rgb_array(image.cpu()), path, channels, level_labels(backbone)[:len(levels)])


def save_feature_maps(levels: list[torch.Tensor], image: np.ndarray, path: str | Path, channels: int = 8,
                      names: list[str] | None = None) -> Path:
    """A grid: the image, then for each level its first ``channels`` activation maps (each scaled to its own
    range; the row label gives the level's name, channels and size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = min(channels, max(level.shape[0] for level in levels))
    fig, axes = plt.subplots(len(levels), shown + 1, figsize=(1.3 * (shown + 1), 1.35 * len(levels)), squeeze=False)
    for row, level in enumerate(levels):
        axes[row, 0].imshow(image)
        c, h, w = level.shape
        label = f"{names[row] if names else f'level {row}'}\n{c}×{h}×{w}"
        axes[row, 0].set_title(label, fontsize=7)
        for col in range(shown):
            ax = axes[row, col + 1]
            if col < c:
                ax.imshow(level[col].numpy(), cmap="viridis")
                if row == 0:
                    ax.set_title(f"channel {col}", fontsize=7)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)
