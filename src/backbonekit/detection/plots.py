"""Pictures of a detector's results: precision–recall curves per class, and images with true and predicted boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2.functional import pad, resize
from torchvision.utils import draw_bounding_boxes, make_grid, save_image

from backbonekit.training.plots import plt


def plot_pr_curves(curves: dict[str, list[float]], ap50: dict[str, float | None], out_path: Path,
                   title: str = "precision–recall at IoU 0.5") -> Path:
    """``curves``: per class the precision at 101 recall points (pycocotools' sampling; -1 = recall not reached)."""
    fig = pr_curve_figure(curves, ap50, title)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


def pr_curve_figure(curves: dict[str, list[float]], ap50: dict[str, float | None], title: str):
    """The curves in one panel, their legend (class and AP50) beside it rather than over the curves."""
    recall = [i / 100 for i in range(101)]
    # Constrained layout makes room for the legend outside the axes ("outside right upper").
    fig, ax = plt.subplots(figsize=(5.5 + 2.2 * (1 + len(curves) // 30), 4.5), layout="constrained")
    colours = class_colours(len(curves))
    for (name, precision), colour in zip(curves.items(), colours):
        points = [(r, p) for r, p in zip(recall, precision) if p >= 0]
        ap = ap50.get(name)
        label = f"{name} AP50 {ap:.1f}%" if ap is not None else f"{name} (no objects)"
        ax.plot([r for r, _ in points], [p for _, p in points], label=label, color=np.array(colour) / 255)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        fig.legend(fontsize=8, loc="outside right upper", ncols=1 + len(curves) // 30)
    return fig


# Sample drawings of small network inputs (a 128² training size) are enlarged to this longer side first, so that
# their labels stay legible.
MIN_DRAWN_SIDE = 480
HEADER_BACKGROUND, HEADER_TEXT, KEY_GREY = (255, 255, 255), (20, 20, 20), (110, 110, 110)


def class_colours(n: int) -> list[tuple[int, int, int]]:
    """One colour per class: matplotlib's tab10 (tab20 beyond 10 classes), repeated past 20."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"].colors
    return [tuple(round(255 * c) for c in palette[i % len(palette)]) for i in range(n)]


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (its perceived luminance)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _font_path() -> str:
    from matplotlib import font_manager

    return font_manager.findfont("DejaVu Sans")  # ships with matplotlib: the same letters on every machine


def draw_detections(image: torch.Tensor, detections: dict, class_names: list[str], target: dict | None = None,
                    score_threshold: float = 0.3, *, title: str | None = None, min_side: int = 0) -> torch.Tensor:
    """uint8 (3, H', W'): detections scoring ≥ ``score_threshold`` outlined in their class's colour and labelled
    with class and score (text on a filled box in that colour), true boxes of ``target`` filled in their class's
    colour, and above the picture ``title`` (the file name) with a legend. An image whose longer side is under
    ``min_side`` is enlarged to it first; otherwise the picture below the legend is in the image's own pixels."""
    image = image.as_subclass(torch.Tensor).to(torch.uint8).cpu()
    scale = max(1.0, min_side / max(image.shape[-2:]))
    if scale > 1:
        image = resize(image, [round(image.shape[-2] * scale), round(image.shape[-1] * scale)], antialias=True)
    colours = class_colours(len(class_names))
    font_size = max(12, round(max(image.shape[-2:]) / 55))
    shown = set()
    if target is not None and len(target["boxes"]):
        labels = target["labels"].tolist()
        shown.update(labels)
        image = draw_bounding_boxes(image, target["boxes"].as_subclass(torch.Tensor).cpu() * scale, fill=True,
                                    colors=[colours[c] for c in labels], width=1)
    keep = detections["scores"] >= score_threshold
    left_off = 0
    if keep.any():
        labels, scores = detections["labels"][keep].tolist(), detections["scores"][keep].tolist()
        shown.update(labels)
        background = [colours[c] for c in labels]
        boxes = detections["boxes"][keep].cpu().float() * scale
        image = draw_bounding_boxes(image, boxes, width=max(2, font_size // 7), colors=background)
        texts = [f"{class_names[c]} {s:.2f}" for c, s in zip(labels, scores)]
        image, left_off = _draw_labels(image, boxes, texts, background, font_size)
    key = [(class_names[c], colours[c]) for c in sorted(shown)]
    if left_off:
        note = f"{left_off} label{'s' * (left_off > 1)} left off (no room)"
        title = f"{title} · {note}" if title else note
    return _with_header(image, title, key, truth=target is not None, score_threshold=score_threshold,
                        font_size=font_size)


def _draw_labels(image: torch.Tensor, boxes: torch.Tensor, texts: list[str], colours: list, font_size: int):
    """Each box's "class score" on a filled rectangle in its colour, placed by ``place_labels`` so that none covers
    another; returns the image and how many labels found no place."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(_font_path(), font_size)
    pad = max(1, font_size // 8)
    sizes = []
    for text in texts:
        left, top, right, bottom = font.getbbox(text)
        sizes.append((right + 2 * pad, bottom + 2 * pad))  # from the text origin: ascender space included
    places = place_labels(boxes, sizes, tuple(image.shape[-2:]))
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(picture)
    for place, text, colour in zip(places, texts, colours):
        if place is not None:
            draw.rectangle([place[0], place[1], place[2] - 1, place[3] - 1], fill=tuple(colour))
            draw.text((place[0] + pad, place[1] + pad), text, fill=text_colour(colour), font=font)
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1), sum(place is None for place in places)


def place_labels(boxes: torch.Tensor, sizes: list[tuple[int, int]], canvas: tuple[int, int],
                 reach: float = 2.0) -> list[tuple[int, int, int, int] | None]:
    """Where to put each box's label of (width, height) ``sizes`` on an (H, W) ``canvas``: integer rectangles
    (x1, y1, x2, y2), exclusive ends, inside the canvas, no two overlapping; ``None`` where there is no room.

    Labels are placed in the boxes' order (best score first). Each takes the first free spot of: inside its box's
    top-left corner (where torchvision puts it), just above it, inside the bottom-left corner, just below it, the same
    at the right edge; then the free spot nearest the first among positions on a grid no further from the box than
    ``reach`` label heights.
    """
    height, width = canvas
    placed = np.zeros((0, 4))
    out: list[tuple[int, int, int, int] | None] = []
    for box, (w, h) in zip(boxes.tolist(), sizes):
        if w > width or h > height:
            out.append(None)
            continue
        x1, y1, x2, y2 = box
        near = [(x1, y1), (x1, y1 - h), (x1, y2 - h), (x1, y2), (x2 - w, y1), (x2 - w, y1 - h), (x2 - w, y2 - h),
                (x2 - w, y2)]
        margin = reach * h
        xs = np.arange(max(0.0, x1 - w - margin), min(width - w, x2 + margin) + 1, max(1, h // 2))
        ys = np.arange(max(0.0, y1 - h - margin), min(height - h, y2 + margin) + 1, max(1, h // 2))
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        grid = grid[np.argsort(np.hypot(grid[:, 0] - x1, grid[:, 1] - y1), kind="stable")]
        spots = np.concatenate([np.array(near, dtype=float).reshape(-1, 2), grid])
        spots = np.round(np.clip(spots, 0, [width - w, height - h]))
        rects = np.concatenate([spots, spots + [w, h]], 1)
        free = ~((rects[:, None, 0] < placed[None, :, 2]) & (placed[None, :, 0] < rects[:, None, 2])
                 & (rects[:, None, 1] < placed[None, :, 3]) & (placed[None, :, 1] < rects[:, None, 3])).any(1)
        if not free.any():
            out.append(None)
            continue
        rect = rects[free.argmax()]
        placed = np.concatenate([placed, rect[None]])
        out.append(tuple(int(v) for v in rect))
    return out


def _with_header(image: torch.Tensor, title: str | None, classes: list[tuple[str, tuple]], truth: bool,
                 score_threshold: float, font_size: int) -> torch.Tensor:
    """``image`` under a white strip: ``title`` on its own line, then the legend (the drawing styles, the colour of
    each class shown), wrapped to the image's width."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(_font_path(), font_size)
    width = image.shape[-1]
    items = [("truth", KEY_GREY, "filled")] if truth else []
    items += [(f"prediction, score ≥ {score_threshold:.2f}", KEY_GREY, "outline")]
    items += [(name, colour, "filled") for name, colour in classes]
    lines = _wrap(items, font, font_size, width - font_size // 2)
    line_height = round(font_size * 1.5)
    header = Image.new("RGB", (width, line_height * (len(lines) + (title is not None)) + font_size // 3),
                       HEADER_BACKGROUND)
    draw = ImageDraw.Draw(header)
    y = font_size // 4
    if title is not None:
        draw.text((font_size // 2, y), _fit(title, font, width - font_size), fill=HEADER_TEXT, font=font)
        y += line_height
    for line in lines:
        x = font_size // 2
        for name, colour, style in line:
            box = [x, y + font_size // 6, x + font_size, y + font_size * 7 // 6]
            draw.rectangle(box, fill=colour if style == "filled" else None, outline=colour, width=2)
            draw.text((x + font_size * 4 // 3, y), name, fill=HEADER_TEXT, font=font)
            x += _item_width(name, font, font_size)
        y += line_height
    strip = torch.from_numpy(np.array(header)).permute(2, 0, 1)
    return torch.cat([strip, image], dim=1)


def _item_width(name: str, font, font_size: int) -> int:
    """A legend entry: swatch, gap, name, space before the next."""
    return round(font_size * 4 / 3 + font.getlength(name) + font_size)


def _wrap(items: list, font, font_size: int, width: int) -> list[list]:
    lines: list[list] = [[]]
    used = 0
    for item in items:
        size = _item_width(item[0], font, font_size)
        if lines[-1] and used + size > width:
            lines.append([])
            used = 0
        lines[-1].append(item)
        used += size
    return lines if lines[0] else []


def _fit(text: str, font, width: int) -> str:
    """``text``, shortened in the middle with … until it fits ``width`` pixels (a file name keeps its end)."""
    if font.getlength(text) <= width:
        return text
    keep = len(text)
    while keep > 4 and font.getlength(text[:keep // 2] + "…" + text[-(keep - keep // 2):]) > width:
        keep -= 1
    return text[:keep // 2] + "…" + text[-(keep - keep // 2):]


def save_detection_grid(images: list[torch.Tensor], out_path: Path, columns: int = 4) -> Path:
    """uint8 images side by side in one PNG; shorter ones (a legend of more lines) padded white at the bottom."""
    height = max(im.shape[-2] for im in images)
    width = max(im.shape[-1] for im in images)
    padded = [pad(im.float() / 255, [0, 0, width - im.shape[-1], height - im.shape[-2]], fill=1.0) for im in images]
    grid = make_grid(padded, nrow=min(columns, len(images)), padding=4, pad_value=1.0)
    save_image(grid, out_path)
    return Path(out_path)
