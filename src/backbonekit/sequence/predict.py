"""``predict sequence``: the manipulation sequence of each image, as ids and names; optionally a CSV in the
annotation format and a grid of images captioned with predicted (and, for annotated splits, true) sequences."""
from __future__ import annotations

import csv
from pathlib import Path

import torch
from PIL import Image

from backbonekit.io.images import find_images, load_image
from backbonekit.sequence.data import SeqDeepFakeDataset, build_transform, format_label
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task
from backbonekit.sequence.vocab import label_to_name



def predict_sequences(checkpoint: str | Path, paths=(), *, data: str | Path | None = None, split: str = "test",
                      batch_size: int = 32, device: str | None = None) -> list[dict]:
    """Rows ``{file_path, label, name[, true_label, true_name]}``; with ``data`` the split's annotated images (and
    file paths relative to the data root, as the annotations have them), otherwise the given files/folders."""
    task, device = load_for_inference(checkpoint, get_task("sequence"), device)
    subset, transform = task.cfg.subset, build_transform(task.cfg.image_size, train=False)
    if data is not None:
        ds = SeqDeepFakeDataset(data, subset, split, transform=transform)
        items = [(p.relative_to(Path(data)).as_posix(), p, label) for p, label, _ in ds.samples]
    else:
        items = [(str(p), p, None) for p in find_images(paths)]
    rows = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        images = torch.stack([transform(load_image(p)) for _, p, _ in chunk]).to(device)
        with torch.inference_mode():
            predicted = task(images).cpu().tolist()
        for (name, _, true), pred in zip(chunk, predicted):
            row = {"file_path": name, "label": pred, "name": label_to_name(pred, subset)}
            if true is not None:
                row.update(true_label=true, true_name=label_to_name(true, subset))
            rows.append(row)
    return rows


def write_csv(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file_path", "label"])
        writer.writerows((r["file_path"], format_label(r["label"])) for r in rows)
    return path


def draw_grid(rows: list[dict], path: str | Path, root: str | Path | None = None, max_images: int = 16) -> Path:
    """Images with "pred: …" (green when right, red when wrong) and "true: …" under each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows[:max_images]
    cols = min(4, len(rows))
    nrows = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3 * cols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        ax.imshow(load_image(Path(root) / row["file_path"] if root else Path(row["file_path"])))
        title = f"pred: {row['name']}"
        colour = "black"
        if "true_name" in row:
            title += f"\ntrue: {row['true_name']}"
            colour = "green" if row["label"] == row["true_label"] else "red"
        ax.set_title(title, fontsize=8, color=colour)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
