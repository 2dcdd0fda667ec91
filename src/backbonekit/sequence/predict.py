"""``predict sequence``: the manipulation sequence of each image, as ids and names; optionally a CSV in the
annotation format and a grid of images captioned with predicted (and, for annotated splits, true) sequences."""
from __future__ import annotations

import csv
from pathlib import Path

import torch
from PIL import Image

from backbonekit.errors import DataError
from backbonekit.sequence.data import SeqDeepFakeDataset, build_transform, format_label
from backbonekit.sequence.task import load_sequence_model
from backbonekit.sequence.vocab import label_to_name

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def predict_sequences(checkpoint: str | Path, paths=(), *, data: str | Path | None = None, split: str = "test",
                      batch_size: int = 32, device: str | None = None) -> list[dict]:
    """Rows ``{file_path, label, name[, true_label, true_name]}``; with ``data`` the split's annotated images (and
    file paths relative to the data root, as the annotations have them), otherwise the given files/folders."""
    model, hp = load_sequence_model(checkpoint)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    subset, transform = hp["subset"], build_transform(hp["image_size"], train=False)
    if data is not None:
        ds = SeqDeepFakeDataset(data, subset, split, transform=transform)
        items = [(p.relative_to(Path(data)).as_posix(), p, label) for p, label, _ in ds.samples]
    else:
        items = [(str(p), p, None) for p in _find_images(paths)]
    rows = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        images = torch.stack([transform(_open(p)) for _, p, _ in chunk]).to(device)
        for (name, _, true), pred in zip(chunk, model.generate(images).cpu().tolist()):
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
        ax.imshow(_open(Path(root) / row["file_path"] if root else Path(row["file_path"])))
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


def _find_images(paths) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not found:
        raise DataError(f"no images found in {', '.join(map(str, paths))}")
    return found


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: cannot read image ({e})") from None
