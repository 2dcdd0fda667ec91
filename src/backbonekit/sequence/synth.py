"""A small, learnable stand-in for SeqDeepFake, written in the official layout from photos bundled with scikit-image.

Each image starts from a real photo (an LFW face upscaled and tinted, or a random crop of astronaut, chelsea, coffee …
with flip and colour changes, so no two images are alike) and receives 0–5 distinct edits in a random order. Every edit
type paints a fixed region (facial_components: hair at the top, eyebrow band, eye band, nose centre, lip below) with its
own texture, in a colour fixed by the edit's *step* (1st red, 2nd green, …). So the regions that are painted say
*which* edits happened and their colours say *in what order*; the regions overlap, so a later edit visibly paints over
part of an earlier one as well. The same seed writes byte-identical files.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from backbonekit.errors import ConfigError
from backbonekit.io.output import output_folder
from backbonekit.sequence.data import SPLITS, format_label
from backbonekit.sequence.vocab import MAX_EDITS, NUM_EDIT_TYPES, edit_names, label_to_name

# Colour of the k-th edit applied (k = 0..4): order is readable from colour.
STEP_COLOURS = np.array([(225, 40, 40), (40, 205, 60), (40, 90, 235), (235, 215, 40), (205, 40, 205)], np.float32)

# Regions as fractions of the image: (kind, y0, y1, x0, x1, opacity). Same ids, same places for both subsets' layouts.
REGIONS = {
    "facial_components": {
        1: [("rect", 0.40, 0.66, 0.38, 0.62, 0.75)],                                  # nose: centre patch
        2: [("ellipse", 0.32, 0.48, 0.14, 0.46, 0.75), ("ellipse", 0.32, 0.48, 0.54, 0.86, 0.75)],  # eyes
        3: [("rect", 0.22, 0.36, 0.12, 0.88, 0.75)],                                  # eyebrows: band above eyes
        4: [("ellipse", 0.62, 0.82, 0.28, 0.72, 0.75)],                               # lip: lower centre
        5: [("rect", 0.00, 0.25, 0.00, 1.00, 0.75)],                                  # hair: top
    },
    "facial_attributes": {
        1: [("rect", 0.00, 0.30, 0.18, 0.82, 0.75)],                                  # Bangs: over the forehead
        2: [("ring", 0.30, 0.50, 0.12, 0.47, 0.85), ("ring", 0.30, 0.50, 0.53, 0.88, 0.85),
            ("rect", 0.38, 0.42, 0.45, 0.55, 0.85)],                                  # Eyeglasses: two rims + bridge
        3: [("rect", 0.66, 0.96, 0.18, 0.82, 0.75)],                                  # Beard: lower face
        4: [("ellipse", 0.60, 0.76, 0.30, 0.70, 0.8)],                                # Smiling: mouth
        5: [("ellipse", 0.12, 0.88, 0.20, 0.80, 0.35)],                               # Young: whole face, faint
    },
}
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")


def synthesize_seqdeepfake(out: str | Path, subset: str = "facial_components", num_images: int = 300, seed: int = 0,
                           image_size: int = 128, split_fractions=(0.7, 0.15, 0.15)) -> dict[str, int]:
    """Write ``<out>/<subset>/annotations/{train,val,test}.csv`` and the images; returns images per split."""
    edit_names(subset)
    if num_images < len(SPLITS):
        raise ConfigError(f"--num-images must be at least {len(SPLITS)} (one per split)")
    if image_size < 32:
        raise ConfigError("--image-size must be at least 32")
    rng = np.random.default_rng(seed)
    out = output_folder(out, create=False)
    pool = _photo_pool()
    masks = {e: _region_mask(REGIONS[subset][e], image_size) for e in range(1, NUM_EDIT_TYPES + 1)}
    textures = {e: _texture(e, image_size) for e in range(1, NUM_EDIT_TYPES + 1)}

    n_val = max(1, round(num_images * split_fractions[1]))
    n_test = max(1, round(num_images * split_fractions[2]))
    split_of = ["train"] * (num_images - n_val - n_test) + ["val"] * n_val + ["test"] * n_test
    rows: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for index in range(num_images):
        length = int(rng.integers(0, MAX_EDITS + 1))
        edits = [int(e) for e in rng.permutation(NUM_EDIT_TYPES)[:length] + 1]
        label = edits + [0] * (MAX_EDITS - length)
        image = _base_image(pool, rng, image_size)
        for step, e in enumerate(edits):
            image = _apply_edit(image, masks[e], textures[e], STEP_COLOURS[step], rng)
        split = split_of[index]
        rel = Path(subset) / "images" / split / label_to_name(label, subset) / f"{index:06d}.jpg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(out / rel, quality=95)
        rows[split].append((rel.as_posix(), format_label(label)))

    (out / subset / "annotations").mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        with open(out / subset / "annotations" / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["file_path", "label"])
            writer.writerows(split_rows)
    return {s: len(r) for s, r in rows.items()}


def _photo_pool() -> dict[str, list[np.ndarray]]:
    try:
        import skimage.data
    except ImportError:
        raise ConfigError("`data synth seqdeepfake` draws on scikit-image's bundled photos: pip install scikit-image") \
            from None
    faces = skimage.data.lfw_subset()[:100]  # the first 100 of the 200 are faces, 25×25 grey
    return {"faces": [f.astype(np.float32) * 255 for f in faces],
            "photos": [getattr(skimage.data, name)().astype(np.float32) for name in PHOTOS]}


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return np.asarray(im.resize((size, size), Image.BICUBIC), dtype=np.float32)


def _base_image(pool, rng: np.random.Generator, size: int) -> np.ndarray:
    if rng.random() < 0.5:  # a real face, upscaled and given a random skin-like tint
        face = _resize(pool["faces"][rng.integers(len(pool["faces"]))], size)
        image = face[..., None] * rng.uniform(0.6, 1.1, size=3).astype(np.float32)
    else:  # a random crop of a bundled photo
        photo = pool["photos"][rng.integers(len(pool["photos"]))]
        h, w = photo.shape[:2]
        side = int(rng.uniform(0.35, 0.9) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        image = _resize(photo[y:y + side, x:x + side], size)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    contrast, brightness = rng.uniform(0.7, 1.2), rng.uniform(-25, 25)
    return (image - image.mean()) * contrast + image.mean() + brightness


def _region_mask(parts, size: int) -> np.ndarray:
    """(size, size) opacity map in [0, 1] covering the region's parts."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    yy, xx = yy / size, xx / size
    mask = np.zeros((size, size), np.float32)
    for kind, y0, y1, x0, x1, alpha in parts:
        cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
        r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        if kind == "rect":
            inside = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
        elif kind == "ellipse":
            inside = r <= 1
        else:  # ring: the rim of an ellipse
            inside = (r <= 1) & (r >= 0.55)
        mask = np.maximum(mask, inside * alpha)
    return mask


def _texture(edit: int, size: int) -> np.ndarray:
    """A pattern per edit type in [0, 1], so the edit's identity shows in its texture as well as its place."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = max(4.0, size / 16)
    phase = {1: yy, 2: xx, 3: xx + yy, 4: None, 5: None}[edit]
    if edit == 4:
        return (((yy // period) + (xx // period)) % 2).astype(np.float32)
    if edit == 5:
        return np.full((size, size), 0.5, np.float32)  # flat
    return (np.sin(2 * np.pi * phase / period) > 0).astype(np.float32)


def _apply_edit(image, mask, texture, colour, rng) -> np.ndarray:
    # Shade of the step colour modulated by the texture and a little per-image jitter, blended over the region.
    paint = colour[None, None] * (0.55 + 0.45 * texture[..., None]) * rng.uniform(0.85, 1.1)
    m = mask[..., None]
    return image * (1 - m) + paint * m
