"""``data synth shapes``: small, learnable detection data sets written in the true KITTI or COCO format.

Each image is a noisy two-tone background with 0–6 filled shapes of three classes — rectangle, circle, triangle —
in class-typical colours (red-ish, green-ish, blue-ish, jittered) and sizes from about 8% to 60% of the shorter
side. Shapes may run off the border (KITTI ``truncated`` = the share of the shape outside the image) and hide each
other (``occluded`` 0/1/2 from the share covered by later shapes; shapes hidden for more than 90% are not labelled).
Grey hexagons are unlabelled-class clutter ("Misc" in KITTI, absent from COCO). In KITTI, some images get a
``DontCare`` region holding a few shapes too small to label, as in the real data.

KITTI: ``<out>/training/image_2/NNNNNN.png`` and ``<out>/training/label_2/NNNNNN.txt`` (rectangle → Car, circle →
Pedestrian, triangle → Cyclist; plausible 3D fields). COCO: ``<out>/images/NNNNNN.png`` and
``<out>/annotations.json``. Image ``i`` depends only on (seed, i), and the same seed writes byte-identical files.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from backbonekit.detection.kitti import KittiObject, write_kitti_file
from backbonekit.errors import ConfigError
from backbonekit.io.output import output_folder

SHAPES = ("rectangle", "circle", "triangle")
KITTI_TYPES = {"rectangle": "Car", "circle": "Pedestrian", "triangle": "Cyclist"}
COLOURS = {"rectangle": (215, 60, 50), "circle": (60, 195, 70), "triangle": (60, 90, 225)}
DEFAULT_SIZES = {"kitti": (128, 384), "coco": (256, 256)}
# Plausible real-world sizes (h, w, l in metres) for the 3D fields of the KITTI lines.
DIMENSIONS = {"Car": (1.5, 1.6, 3.9), "Pedestrian": (1.75, 0.6, 0.8), "Cyclist": (1.7, 0.6, 1.75)}
MAX_HIDDEN = 0.9


def draw_shape(kind: str, box: tuple[float, float, float, float], canvas: tuple[int, int],
               offset: int) -> np.ndarray:
    """Boolean mask (canvas H + 2·offset, W + 2·offset) of one shape whose bounding box is ``box`` (image pixels);
    the margin lets a shape run off the image while its whole area stays known."""
    mask = Image.new("L", (canvas[1] + 2 * offset, canvas[0] + 2 * offset), 0)
    draw = ImageDraw.Draw(mask)
    x1, y1, x2, y2 = (v + offset for v in box)
    if kind == "rectangle":
        draw.rectangle((x1, y1, x2, y2), fill=1)
    elif kind == "circle":
        draw.ellipse((x1, y1, x2, y2), fill=1)
    elif kind == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=1)
    else:  # hexagon clutter
        r = min(x2 - x1, y2 - y1) / 2
        draw.regular_polygon(((x1 + x2) / 2, (y1 + y2) / 2, r), 6, fill=1)
    return np.asarray(mask, dtype=bool)


def _background(rng: np.random.Generator, canvas: tuple[int, int]) -> np.ndarray:
    h, w = canvas
    top, bottom = rng.integers(40, 150, 3), rng.integers(40, 150, 3)
    ramp = np.linspace(0, 1, h)[:, None, None]
    image = top * (1 - ramp) + bottom * ramp + rng.normal(0, 8, (h, w, 3))
    return np.broadcast_to(image, (h, w, 3)).copy()


def _random_box(rng, kind: str, canvas: tuple[int, int], small: bool = False):
    h, w = canvas
    side = min(h, w) * (rng.uniform(0.03, 0.06) if small else rng.uniform(0.08, 0.6))
    aspect = {"rectangle": rng.uniform(1.2, 2.2), "circle": 1.0, "triangle": rng.uniform(0.8, 1.2)}.get(kind, 1.0)
    bw, bh = side * aspect, side
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    return (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)


def _paint(image: np.ndarray, mask: np.ndarray, colour, rng) -> None:
    image[mask] = np.clip(np.asarray(colour, dtype=float) + rng.normal(0, 6, (int(mask.sum()), 3)), 0, 255)


def _kitti_3d(rng, kind: str) -> dict:
    """Plausible (not geometrically consistent) 3D fields, so the lines look and parse like the real ones."""
    h, w, length = (d * rng.uniform(0.9, 1.1) for d in DIMENSIONS[kind])
    x, y, z = rng.uniform(-12, 12), rng.uniform(1.4, 2.2), rng.uniform(5, 60)
    alpha = rng.uniform(-math.pi, math.pi)
    ry = (alpha + math.atan2(x, z) + math.pi) % (2 * math.pi) - math.pi
    return {"alpha": alpha, "dimensions": (h, w, length), "location": (x, y, z), "rotation_y": ry}


def synth_image(seed: int, index: int, canvas: tuple[int, int], dont_care: bool, max_objects: int = 6):
    """One image (H, W, 3 uint8) and its objects as dicts with shape, box, truncated, occluded (and DontCare
    regions as ``{"shape": None, "box": …}``)."""
    rng = np.random.default_rng([seed, index])
    h, w = canvas
    margin = int(0.7 * min(h, w)) + 2  # half the widest box (0.6 × 2.2 of the short side) fits
    image = _background(rng, canvas)
    regions = []
    if dont_care and rng.random() < 0.4:  # a patch of far-away, unlabelled objects
        x1, y1 = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.7)
        box = (x1, y1, min(w, x1 + rng.uniform(0.1, 0.2) * w), min(h, y1 + rng.uniform(0.15, 0.3) * h))
        for _ in range(rng.integers(2, 5)):
            kind = SHAPES[rng.integers(3)]
            sx, sy = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
            small = _random_box(rng, kind, canvas, small=True)
            small = (small[0] - (small[0] + small[2]) / 2 + sx, small[1] - (small[1] + small[3]) / 2 + sy,
                     small[2] - (small[0] + small[2]) / 2 + sx, small[3] - (small[1] + small[3]) / 2 + sy)
            _paint(image, draw_shape(kind, small, canvas, margin)[margin:-margin, margin:-margin], COLOURS[kind], rng)
        regions.append({"shape": None, "box": tuple(float(round(v, 2)) for v in box)})
    drawn = []  # (kind, mask in image, whole area)
    for _ in range(rng.integers(0, max_objects + 1)):
        kind = SHAPES[rng.integers(3)] if rng.random() > 0.1 else "hexagon"
        full = draw_shape(kind, _random_box(rng, kind, canvas), canvas, margin)
        inside = full[margin:-margin, margin:-margin]
        if inside.sum() < 16:
            continue
        if kind == "hexagon":
            colour = (150, 150, 150)
        else:
            colour = np.clip(np.array(COLOURS[kind]) + rng.integers(-30, 31, 3), 0, 255)
        _paint(image, inside, colour, rng)
        drawn.append((kind, inside, int(full.sum())))
    objects = []
    for k, (kind, inside, whole) in enumerate(drawn):
        covered = np.zeros_like(inside)
        for _, later, _ in drawn[k + 1:]:
            covered |= later
        hidden = (inside & covered).sum() / inside.sum()
        if hidden > MAX_HIDDEN:
            continue
        ys, xs = np.nonzero(inside)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        objects.append({"shape": kind, "box": box, "truncated": round(1 - inside.sum() / whole, 2),
                        "occluded": 0 if hidden < 0.05 else 1 if hidden < 0.4 else 2,
                        "area": int(inside.sum()), "rng": rng})
    return np.clip(image, 0, 255).astype(np.uint8), objects + regions


def synthesize_shapes(out: str | Path, fmt: str = "kitti", num_images: int = 50, seed: int = 0,
                      image_size: tuple[int, int] | None = None) -> dict[str, int]:
    """Write the data set; returns counts (images, objects per class, DontCare regions)."""
    if fmt not in DEFAULT_SIZES:
        raise ConfigError(f"--format must be 'kitti' or 'coco', not {fmt!r}")
    if num_images < 1:
        raise ConfigError("--num-images must be at least 1")
    canvas = tuple(image_size) if image_size else DEFAULT_SIZES[fmt]
    if min(canvas) < 32:
        raise ConfigError("--image-size must be at least 32 × 32")
    out = output_folder(out, create=False)
    image_dir = out / "training" / "image_2" if fmt == "kitti" else out / "images"
    _check_no_stale_files(image_dir, num_images)
    image_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "kitti":
        (out / "training" / "label_2").mkdir(parents=True, exist_ok=True)
    counts = {"images": num_images, **{s: 0 for s in SHAPES}, "hexagon": 0, "DontCare": 0}
    coco = {"info": {"description": f"backbonekit synth shapes, seed {seed}"},
            "images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]}
    for index in range(num_images):
        image, objects = synth_image(seed, index, canvas, dont_care=fmt == "kitti")
        name = f"{index:06d}"
        Image.fromarray(image).save(image_dir / f"{name}.png")
        for obj in objects:
            counts[obj["shape"] or "DontCare"] += 1
        if fmt == "kitti":
            write_kitti_file(out / "training" / "label_2" / f"{name}.txt", [_kitti_object(o) for o in objects])
        else:
            coco["images"].append({"id": index + 1, "file_name": f"{name}.png",
                                   "width": canvas[1], "height": canvas[0]})
            for obj in objects:
                if obj["shape"] not in SHAPES:
                    continue
                x1, y1, x2, y2 = obj["box"]
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": index + 1,
                                            "category_id": SHAPES.index(obj["shape"]) + 1,
                                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": obj["area"], "iscrowd": 0})
    if fmt == "coco":
        (out / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n")
    return counts


def summary_line(counts: dict[str, int], fmt: str, out: str | Path) -> str:
    """What was written, by the names the files use: in KITTI each shape's object type (hexagons are Misc, which
    training drops unless --classes names it), in COCO the categories (named after the shapes; hexagons are not
    annotated at all)."""
    if fmt == "kitti":
        kinds = [f"{shape} → {KITTI_TYPES[shape]} {counts[shape]}" for shape in SHAPES]
        return (f"wrote {counts['images']} images to {out} (KITTI): {', '.join(kinds)}, hexagon → Misc "
                f"{counts['hexagon']} (clutter; not among train detect's default --classes), DontCare regions "
                f"{counts['DontCare']}")
    kinds = [f"{shape} {counts[shape]}" for shape in SHAPES]
    return (f"wrote {counts['images']} images to {out} (COCO): categories {', '.join(kinds)}; {counts['hexagon']} "
            "hexagon(s) drawn but not annotated (clutter of no category)")


def _check_no_stale_files(image_dir: Path, num_images: int) -> None:
    """Writing over an earlier, larger data set would leave its extra images behind and silently mix the two:
    refuse instead (rewriting the same or a smaller-numbered set is fine)."""
    if not image_dir.is_dir():
        return
    expected = {f"{i:06d}.png" for i in range(num_images)}
    stale = sorted(p.name for p in image_dir.iterdir() if p.name not in expected)
    if stale:
        raise ConfigError(f"{image_dir} already holds other files ({stale[0]}, … {len(stale)} in all): "
                          "choose an empty --out")


def _kitti_object(obj: dict) -> KittiObject:
    if obj["shape"] is None:
        return KittiObject("DontCare", -1.0, -1, -10.0, obj["box"])
    if obj["shape"] == "hexagon":
        kind, extra = "Misc", _kitti_3d(obj["rng"], "Car")
    else:
        kind = KITTI_TYPES[obj["shape"]]
        extra = _kitti_3d(obj["rng"], kind)
    return KittiObject(kind, obj["truncated"], obj["occluded"], box=obj["box"], **extra)
