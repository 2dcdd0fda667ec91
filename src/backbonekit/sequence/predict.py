"""``predict sequence``: the manipulation sequence of each image, as ids and names; optionally a CSV in the
annotation format and a grid of images captioned with predicted (and, for annotated splits, true) sequences."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from backbonekit.errors import DataError
from backbonekit.io.figures import save_figure
from backbonekit.io.images import find_images, load_image, read_in_batches
from backbonekit.sequence.data import SeqDeepFakeDataset, build_transform, format_label
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task
from backbonekit.sequence.vocab import label_to_name



def predict_sequences(checkpoint: str | Path, paths=(), *, data: str | Path | None = None, split: str = "test",
                      batch_size: int = 32, device: str | None = None, skip_bad_images: bool = False,
                      on_row: Callable[[dict], None] | None = None, runtime: str = "torch",
                      precision: str = "fp32") -> list[dict]:
    """Rows ``{file_path, label, name[, true_label, true_name]}``, each also given to ``on_row`` as it comes; with
    ``data`` the split's annotated images (and file paths relative to the data root, as the annotations have them),
    otherwise the given files/folders. ``skip_bad_images``: an unreadable image is named on stderr and left out."""
    # Inputs before the model: another runtime exports the checkpoint into its run folder.
    if data is not None and not Path(data).is_dir():
        raise DataError(f"--data {data}: no such folder")
    images = find_images(paths) if data is None else None
    task, device = load_for_inference(checkpoint, get_task("sequence"), device, runtime, precision,
                                      batch_size)
    subset, transform = task.cfg.subset, build_transform(task.cfg.image_size, train=False)
    if data is not None:
        ds = SeqDeepFakeDataset(data, subset, split, transform=transform, skip_missing=skip_bad_images)
        ds.report_skipped()
        truth = {p: (p.relative_to(Path(data)).as_posix(), label) for p, label, _ in ds.samples}
    else:
        truth = {p: (str(p), None) for p in images}
    rows = []
    for chunk in read_in_batches(truth, batch_size, skip_bad_images):
        images = torch.stack([transform(image) for _, image in chunk])
        for (path, _), fields in zip(chunk, sequence_fields(task, images, subset, device)):
            name, true = truth[path]
            row = {"file_path": name, **fields}
            if true is not None:
                row.update(true_label=true, true_name=label_to_name(true, subset))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def sequence_fields(task, images: torch.Tensor, subset: str, device) -> list[dict]:
    """Each image's predicted ``label`` (ids) and its ``name``: the computation ``predict`` and ``serve`` share."""
    with torch.inference_mode():
        predicted = task(images.to(device)).cpu().tolist()
    return [{"label": pred, "name": label_to_name(pred, subset)} for pred in predicted]


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
    return save_figure(fig, path, dpi=100)
