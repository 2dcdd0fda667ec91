"""Writers of small KITTI and COCO folders in their true on-disk formats, and KITTI example lines, for the detection
tests (imported as ``detection.writers``: ``tests`` is on the path)."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

# The KITTI readme's example lines, and the other kinds a real label file holds.
CAR = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
DONTCARE = "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10"
VAN = "Van 0.27 1 2.04 0.00 160.00 120.50 260.70 2.10 1.90 5.00 -8.00 1.80 10.00 1.40"
MISC = "Misc 0.00 2 -2.10 700.00 150.00 760.00 190.00 1.50 1.00 2.00 5.00 1.60 30.00 -1.95"
PEDESTRIAN = "Pedestrian 0.88 3 1.50 1200.00 150.00 1250.00 260.00 1.80 0.60 0.80 9.00 1.70 12.00 2.10"
TRUCK = "Truck 0.00 0 1.00 300.00 150.00 400.00 250.00 3.00 2.50 8.00 -3.00 1.60 30.00 0.90"


def write_kitti(root: Path, labels: dict[str, str], size=(375, 1242), images=None, nested=True) -> Path:
    """``labels``: stem → file text. Images are written for ``images`` stems (default: all labels)."""
    folder = root / "training" if nested else root
    (folder / "image_2").mkdir(parents=True, exist_ok=True)
    (folder / "label_2").mkdir(parents=True, exist_ok=True)
    for stem, text in labels.items():
        (folder / "label_2" / f"{stem}.txt").write_text(text)
    for stem in labels if images is None else images:
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(folder / "image_2" / f"{stem}.png")
    return root


def write_coco(root: Path, data: dict) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for img in data["images"]:
        Image.fromarray(np.zeros((img["height"], img["width"], 3), np.uint8)).save(root / "images" / img["file_name"])
    (root / "annotations.json").write_text(json.dumps(data))
    return root / "annotations.json"


def coco_dict():
    """Two images, categories with gappy ids, one crowd box."""
    return {
        "images": [{"id": 7, "file_name": "a.png", "width": 60, "height": 40},
                   {"id": 9, "file_name": "b.png", "width": 60, "height": 40}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [10, 5, 20, 10], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [50, 30, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 1},
            {"id": 4, "image_id": 9, "category_id": 3, "bbox": [1, 1, 30, 30], "area": 900},
        ],
    }


