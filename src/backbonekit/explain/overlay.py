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


# The map's share of each pixel. At 0.5 over the image in colour, jet's own brightness (dark blue to yellow) and hue
# swamped a digit's strokes; the image in grey at 0.6 keeps its shapes readable, and every colour is the map's.
HEAT_ALPHA = 0.4
HEAT_COLORMAP = "jet"


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = HEAT_ALPHA,
                 colormap: str = HEAT_COLORMAP) -> np.ndarray:
    """``image`` (H, W, 3) uint8 in grey with ``heat`` (h, w) in [0, 1] coloured and blended in at ``alpha``
    (resized to the image): the colours read on ``colormap``'s scale (``save_panels(colorbar=…)``)."""
    from matplotlib import colormaps

    heat = resize_map(heat, image.shape[:2])
    coloured = colormaps[colormap](np.clip(heat, 0, 1))[..., :3] * 255
    grey = luminance(image)[..., None]
    return (grey * (1 - alpha) + coloured * alpha).clip(0, 255).astype(np.uint8)


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float luma of an (H, W, 3) RGB array (ITU-R BT.601, as PIL's "L")."""
    return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to (H, W)."""
    if heat.shape == tuple(size):
        return heat
    t = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


def save_panels(panels: Sequence[tuple[np.ndarray, str]], path: str | Path, title: str = "", columns: int | None = None,
                arrows: bool = False, colorbar: str | None = None) -> Path:
    """Panels (RGB array, caption) side by side (``columns`` per row, default all in one row) under ``title``;
    ``arrows`` puts "→" between consecutive panels (a sequence read left to right); ``colorbar`` (its label) adds
    the scale of ``heat_overlay``'s colours, 0 to 1, at the right."""
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
    if colorbar:
        _add_colorbar(fig, colorbar)
    return save_figure(fig, path)


def _add_colorbar(fig, label: str) -> None:
    # After tight_layout (which cannot place a colorbar's axes): the panels give up a strip at the right for it.
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    inches = 0.9  # bar, ticks and label
    right = 1 - inches / fig.get_figwidth()
    fig.subplots_adjust(right=right - 0.01)
    top, bottom = fig.subplotpars.top, fig.subplotpars.bottom
    cax = fig.add_axes((right + 0.12 * inches / fig.get_figwidth(), bottom + 0.1 * (top - bottom),
                        0.15 / fig.get_figwidth(), 0.8 * (top - bottom)))
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), HEAT_COLORMAP), cax=cax)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
