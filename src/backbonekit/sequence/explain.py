"""``explain sequence``: where SeqFakeFormer looked for each edit it predicts.

For each greedy decoding step k, the cross-attention of the decoder's last layer from the query that predicted
edit k to the encoder's feature grid, averaged over the heads (each head's SECA prior centres on its own point;
their mean is where the step looked as a whole), drawn over the image: a strip "step 1: nose → step 2: eyebrow → …".
The maps are attention, not CAMs: ``--method`` and ``--layer`` do not apply (the command has neither; the Python
call refuses them).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch

from backbonekit.errors import ConfigError
from backbonekit.explain.feature_maps import feature_map_file
from backbonekit.explain.images import each_image, output_name
from backbonekit.explain.overlay import heat_overlay, save_panels, to_rgb_array
from backbonekit.sequence.data import build_transform
from backbonekit.sequence.vocab import edit_names, sequence_length


@contextlib.contextmanager
def recorded_cross_attention(model):
    """Yields the list the decoder's last cross-attention appends its weights to, one entry per decoding call."""
    attention = model.transformer.decoder[-1].cross_attn
    grid: list[tuple[int, int]] = []
    hook = model.input_proj.register_forward_hook(lambda m, i, out: grid.append(tuple(out.shape[-2:])))
    attention.recorded = []
    try:
        yield attention.recorded, grid
    finally:
        attention.recorded = None
        hook.remove()


@torch.no_grad()
def edit_attention(trained, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (B, 5) as ``trained`` predicts them, maps (B, 5, h, w) on the feature grid): map k is the attention of
    the query that predicted edit k, each summing to 1; zeros after a sequence ends."""
    model = trained.model
    with recorded_cross_attention(model) as (calls, grid):
        labels = model.generate(trained.normalize(images.to(next(trained.parameters()).device)))
    h, w = grid[0]
    maps = torch.zeros(len(images), labels.shape[1], h, w)
    for step, weights in enumerate(calls[: labels.shape[1]]):
        # Call ``step`` decodes the whole prefix; its row ``step`` is the query whose output was edit ``step``.
        maps[:, step] = weights[:, :, step].mean(1).view(-1, h, w).cpu()
    ends = torch.tensor([sequence_length(label) for label in labels.tolist()])
    maps[torch.arange(labels.shape[1])[None] >= ends[:, None]] = 0
    return labels.cpu(), maps


def step_panels(picture, caption: str, label: torch.Tensor, maps: torch.Tensor, names) -> list[tuple]:
    """(``picture``, ``caption``), then one (overlay, "step k: <edit>") per decoded edit of ``label`` (5,), its map
    of ``maps`` (5, h, w) scaled to its own peak (a map sums to 1 over the grid: its values say little on their own)."""
    return [(picture, caption)] + [
        (heat_overlay(picture, (maps[k] / maps[k].max().clamp_min(1e-12)).numpy()), f"step {k + 1}: {names[int(e)]}")
        for k, e in enumerate(label[:sequence_length(label.tolist())])]


def refuse_cam_options(options) -> None:
    if options.method is not None or options.layer:
        raise ConfigError("explain sequence draws the decoder's cross-attention for each step, not a CAM: method and "
                          "layer do not apply")


def explain_sequence(trained, paths: list[str], options) -> Iterator[Path]:
    refuse_cam_options(options)
    names = edit_names(trained.cfg.subset)
    transform = build_transform(trained.cfg.image_size, train=False)
    taken = set()
    for path, image in each_image(paths, options.skip_bad_images):
        x = transform(image).as_subclass(torch.Tensor)
        labels, maps = edit_attention(trained, x[None])
        picture = to_rgb_array(x)
        panels = step_panels(picture, path.name, labels[0], maps[0], names)
        steps = len(panels) - 1
        sequence = " → ".join(names[int(e)] for e in labels[0, :steps]) or "original (no edit predicted)"
        title = f"{sequence} · decoder cross-attention per step (last layer, mean of heads)"
        yield save_panels(panels, options.out / output_name(path, taken, "_steps.png"), title, arrows=True)
        if options.feature_maps:
            backbone = trained.model.backbone
            yield feature_map_file(backbone.body, x, trained.normalize, options.out / output_name(
                path, taken, "_features.png"), options.feature_maps, last=backbone.out_indices[-1])
