"""Maps drawn over their image: a colour map blended in, and strips of captioned panels saved as one PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from backbonekit.io.figures import save_figure


def to_rgb_array(image: torch.Tensor) -> np.ndarray:
    """A uint8 (3, H, W) tensor → (H, W, 3) uint8 array."""
    return image.permute(1, 2, 0).contiguous().numpy()


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``heat`` (h, w) in [0, 1] coloured and blended in (resized to the image)."""
    from matplotlib import colormaps

    heat = resize_map(heat, image.shape[:2])
    coloured = colormaps[colormap](np.clip(heat, 0, 1))[..., :3] * 255
    return (image * (1 - alpha) + coloured * alpha).clip(0, 255).astype(np.uint8)


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to (H, W)."""
    if heat.shape == tuple(size):
        return heat
    t = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


def save_panels(panels: Sequence[tuple[np.ndarray, str]], path: str | Path, title: str = "", columns: int | None = None,
                arrows: bool = False) -> Path:
    """Panels (RGB array, caption) side by side (``columns`` per row, default all in one row) under ``title``;
    ``arrows`` puts "→" between consecutive panels (a sequence read left to right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(panels))
    columns = min(columns or n, n)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows + (0.4 if title else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (picture, caption) in enumerate(panels):
        ax = axes.flat[i]
        ax.imshow(picture)
        ax.set_title(caption, fontsize=9)
        if arrows and i + 1 < n and (i + 1) % columns:
            ax.annotate("→", xy=(1.08, 0.5), xycoords="axes fraction", fontsize=16, ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
