"""Pictures of a detector's results: precision–recall curves per class, and images with true and predicted boxes."""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import draw_bounding_boxes, make_grid, save_image

from backbonekit.training.plots import plt

TRUE_COLOUR, PREDICTED_COLOUR = "lime", "red"


def plot_pr_curves(curves: dict[str, list[float]], ap50: dict[str, float | None], out_path: Path,
                   title: str = "precision–recall at IoU 0.5") -> Path:
    """``curves``: per class the precision at 101 recall points (pycocotools' sampling; -1 = recall not reached)."""
    recall = [i / 100 for i in range(101)]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, precision in curves.items():
        points = [(r, p) for r, p in zip(recall, precision) if p >= 0]
        ap = ap50.get(name)
        label = f"{name} AP50 {ap:.1f}%" if ap is not None else f"{name} (no objects)"
        ax.plot([r for r, _ in points], [p for _, p in points], label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return Path(out_path)


def draw_detections(image: torch.Tensor, detections: dict, class_names: list[str], target: dict | None = None,
                    score_threshold: float = 0.3) -> torch.Tensor:
    """uint8 (3, H, W) with true boxes (green, if ``target``) and detections scoring ≥ ``score_threshold`` (red,
    labelled with class and score)."""
    image = image.as_subclass(torch.Tensor).to(torch.uint8).cpu()
    if target is not None and len(target["boxes"]):
        image = draw_bounding_boxes(image, target["boxes"].as_subclass(torch.Tensor).cpu(), colors=TRUE_COLOUR,
                                    width=1)
    keep = detections["scores"] >= score_threshold
    boxes = detections["boxes"][keep].cpu()
    if len(boxes):
        labels = [f"{class_names[int(c)]} {s:.2f}" for c, s in zip(detections["labels"][keep].tolist(),
                                                                   detections["scores"][keep].tolist())]
        image = draw_bounding_boxes(image, boxes, labels=labels, colors=PREDICTED_COLOUR, width=2)
    return image


def save_detection_grid(images: list[torch.Tensor], out_path: Path, columns: int = 4) -> Path:
    """Same-size uint8 images side by side in one PNG."""
    grid = make_grid([im.float() / 255 for im in images], nrow=min(columns, len(images)), padding=4, pad_value=1.0)
    save_image(grid, out_path)
    return Path(out_path)
