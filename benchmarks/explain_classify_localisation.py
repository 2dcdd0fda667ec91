"""Does `explain classify` show where the evidence is? Canvases of noise and clutter (thin lines, dots) hold one
filled shape (disk, square, triangle, plus; random colour, size and place), and the shape alone is the class. A
ResNet-18 trained on them from scratch is then explained on held-out canvases: for each CAM method, the share of
images whose CAM peak (argmax of the map at image resolution, for the true class) lies inside the shape's box.
Chance is the box's share of the image (where a peak dropped at random would land).

The maps are taken as `explain classify` takes them: the image through the eval transform (resize to size/0.875,
centre crop; the boxes moved with it) and the default layer, plus other layers for comparison (``--also-layers``).

Run:  .venv/bin/python benchmarks/explain_classify_localisation.py [--train-per-class 750] [--epochs 10]
          [--out runs/explain-classify] [--checkpoint RUN/best.ckpt (skip training)]
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import backbonekit as bk

CLASSES = ("disk", "square", "triangle", "plus")
CANVAS = 96
MARGIN = 8  # the eval centre crop cuts ~6 px off each side: the shape stays whole


def draw_canvas(rng: np.random.Generator, label: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One canvas with shape ``label``; its box (x0, y0, x1, y1) inclusive, in canvas pixels."""
    base = rng.integers(60, 190)
    pixels = np.clip(base + rng.normal(0, 25, (CANVAS, CANVAS, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(4, 9)):  # clutter the classifier must learn to ignore
        x0, y0, x1, y1 = rng.integers(0, CANVAS, 4).tolist()
        draw.line((x0, y0, x1, y1), fill=tuple(rng.integers(0, 256, 3).tolist()), width=1)
    for _ in range(rng.integers(5, 15)):
        x, y = rng.integers(0, CANVAS - 3, 2).tolist()
        draw.ellipse((x, y, x + 2, y + 2), fill=tuple(rng.integers(0, 256, 3).tolist()))
    size = int(rng.integers(18, 29))
    x0, y0 = rng.integers(MARGIN, CANVAS - MARGIN - size, 2).tolist()
    x1, y1 = x0 + size - 1, y0 + size - 1
    colour = rng.integers(0, 256, 3)
    while abs(int(colour.mean()) - int(base)) < 50:  # visible against the background
        colour = rng.integers(0, 256, 3)
    fill = tuple(colour.tolist())
    if CLASSES[label] == "disk":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif CLASSES[label] == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif CLASSES[label] == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=fill)
    else:
        bar = size // 3
        draw.rectangle((x0, y0 + bar, x1, y1 - bar), fill=fill)
        draw.rectangle((x0 + bar, y0, x1 - bar, y1), fill=fill)
    return image, (x0, y0, x1, y1)


def write_split(root: Path, per_class: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image, box = draw_canvas(rng, label)
            path = root / name / f"{i:04d}.png"
            image.save(path)
            records.append({"path": str(path), "label": label, "box": box})
    return records


def make_data(out: Path, per_class: int, test_images: int) -> list[dict]:
    data, test_file = out / "data", out / "test.json"
    if not test_file.exists():
        write_split(data / "train", per_class, seed=1)
        write_split(data / "val", max(1, per_class // 6), seed=2)
        test = write_split(out / "test", test_images // len(CLASSES), seed=3)
        test_file.write_text(json.dumps(test))
    return json.loads(test_file.read_text())


def train(args) -> Path:
    # From scratch (no weights are fetched here); AdamW at 1e-3 learns the shapes in a few epochs.
    start = time.time()
    run = bk.train("classify", data=Path(args.out) / "data", model="resnet18", image_size=CANVAS, epochs=args.epochs,
                   batch_size=64, optimizer="adamw", lr=1e-3, out=args.out, name="resnet18", exist_ok=True,
                   progress="lines", seed=0)
    assert run.exit_code == 0, run.exit_code
    print(f"trained in {time.time() - start:.0f} s", flush=True)
    return run.best_checkpoint


def eval_inputs(test: list[dict], image_size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The images as `explain classify` feeds them (eval transform), their labels and their boxes moved by the
    same resize and crop."""
    from backbonekit.classification.data import build_eval_transform

    transform = build_eval_transform(image_size)
    images, boxes = [], []
    for record in test:
        with Image.open(record["path"]) as image:
            images.append(transform(image.convert("RGB")))
            w, h = image.size
        scale = (round(image_size / 0.875) if image_size > 64 else image_size) / min(w, h)  # _centre_crop's resize
        offset_x, offset_y = (round(w * scale) - image_size) / 2, (round(h * scale) - image_size) / 2
        x0, y0, x1, y1 = record["box"]
        # Pixel centres: canvas pixel i spans [i, i + 1), so its centre lands at (i + 0.5) * scale - offset.
        boxes.append([x0 * scale - offset_x, y0 * scale - offset_y, (x1 + 1) * scale - offset_x,
                      (y1 + 1) * scale - offset_y])
    return torch.stack(images), np.array([r["label"] for r in test]), np.array(boxes)


def peak_inside(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether the argmax pixel's centre of each map lies inside its box (x0, y0, x1, y1 in continuous pixel
    coordinates)."""
    flat = maps.reshape(len(maps), -1).argmax(1)
    y, x = np.unravel_index(flat, maps.shape[1:])
    cx, cy = x + 0.5, y + 0.5
    return (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])


def evaluate(checkpoint: Path, test: list[dict], also_layers: list[str]) -> None:
    from backbonekit.classification.explain import class_maps
    from backbonekit.explain import METHODS
    from backbonekit.explain.layers import find_layer
    from backbonekit.tasks import load_trained

    _, trained = load_trained(checkpoint)
    trained.eval()
    size = trained.cfg.image_size
    images, labels, boxes = eval_inputs(test, size)
    # The run numbers its classes by sorted folder name, not by CLASSES' order.
    labels = np.array([list(trained.cfg.class_names).index(CLASSES[label]) for label in labels])
    with torch.inference_mode():
        predicted = torch.cat([trained(chunk).argmax(-1) for chunk in images.split(50)]).numpy()
    accuracy = float((predicted == labels).mean())
    clipped = boxes.clip(0, size)
    chance = float(((clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])).mean() / size ** 2)
    default, _ = find_layer(trained.model, None, size)
    layers = [default] + [layer for layer in also_layers if layer != default]
    print(f"\n{len(test)} held-out {CANVAS}² canvases, one shape each ({', '.join(CLASSES)}); ResNet-18 accuracy "
          f"{100 * accuracy:.1f}%; chance (mean box area share) {100 * chance:.1f}%")
    print(f"{'method':<11}{'layer':<16}{'grid':>6}{'peak in box':>13}{'  (correctly classified only)':>30}"
          f"{'peak on edge':>14}{'box holds a cell centre':>26}{'s':>7}")
    results = {}
    for layer in layers:
        _, module = find_layer(trained.model, layer, size)
        grid = _grid(trained, module, size)
        reachable = _box_holds_cell_centre(boxes, grid, size).mean()
        grid_text = f"{grid[0]}×{grid[1]}"
        for method in METHODS:
            start = time.time()
            maps = np.concatenate([class_maps(trained, chunk, chunk_labels.tolist(), method, layer)
                                   for chunk, chunk_labels in zip(images.split(25), torch.from_numpy(labels)
                                                                  .split(25))])
            inside = peak_inside(maps, boxes)
            # Where the strongest cell is on the grid's border, the bilinear map is flat out to the image's edge
            # and argmax takes the plateau's first pixel: a peak there can never be inside a box.
            edge = _peak_on_edge(maps)
            results[(layer, method)] = float(inside.mean())
            right = predicted == labels
            print(f"{method:<11}{layer + (' (default)' if layer == default else ''):<16}{grid_text:>6}"
                  f"{100 * inside.mean():>12.1f}%{100 * inside[right].mean():>29.1f}%{100 * edge.mean():>13.1f}%"
                  f"{100 * reachable:>25.1f}%"
                  f"{time.time() - start:>7.1f}",
                  flush=True)
    for method in METHODS:
        share = results[(default, method)]
        print(f"claim (peak in the box in ≥ 90% at the default layer), {method}: "
              f"{'met' if share >= 0.9 else 'NOT met'} ({100 * share:.1f}%)")


def _peak_on_edge(maps: np.ndarray) -> np.ndarray:
    y, x = np.unravel_index(maps.reshape(len(maps), -1).argmax(1), maps.shape[1:])
    return (y == 0) | (x == 0) | (y == maps.shape[1] - 1) | (x == maps.shape[2] - 1)


def _box_holds_cell_centre(boxes: np.ndarray, grid: tuple[int, int], size: int) -> np.ndarray:
    """Whether a grid cell's centre lies in each box: the bilinear map of an h×w grid peaks at a cell centre (or on
    its plateau at the border), so a box holding none is out of reach whatever the network learnt."""
    ys, xs = ((np.arange(n) + 0.5) * size / n for n in grid)

    def holds(lo, hi, centres):
        return ((lo[:, None] <= centres) & (centres <= hi[:, None])).any(1)
    return holds(boxes[:, 0], boxes[:, 2], xs) & holds(boxes[:, 1], boxes[:, 3], ys)


def _grid(trained, module, size: int) -> tuple[int, int]:
    shapes = []
    handle = module.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
    with torch.inference_mode():
        trained(torch.zeros(1, 3, size, size, dtype=torch.uint8))
    handle.remove()
    return shapes[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=750)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/explain-classify")
    parser.add_argument("--also-layers", nargs="*", default=["layer4", "layer3", "layer2"],
                        help="more layers to measure beside the default (which is measured once)")
    parser.add_argument("--checkpoint", help="a trained run's best.ckpt on --out's data: evaluate only")
    args = parser.parse_args()
    torch.manual_seed(0)
    test = make_data(Path(args.out), args.train_per_class, args.test_images)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(args)
    evaluate(checkpoint, test, args.also_layers)


if __name__ == "__main__":
    main()
