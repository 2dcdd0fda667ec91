"""``predict detect``: a trained detector on image files → PNGs with boxes, KITTI result files, COCO results JSON.

Images are letterboxed to the detector's input size and the boxes mapped back to original pixels and clipped to the
image (a box left with no area, one in the letterbox padding, is dropped), so the written boxes fit the files given
(the PNGs of images under 480 pixels are drawn enlarged, to be readable). Results are written and reported image by
image as they come.

- KITTI result files hold the 16 fields, with the fields a 2D detector does not estimate set as the devkit expects;
  a class name with spaces is written with underscores (one field, as the format needs).
- COCO results use the training data's category ids and the annotations' image ids: those of ``annotations`` (COCO
  JSON files), by default of the run's own COCO data (its ``--data`` and ``--val-data``), so that ``eval detect
  --predictions`` scores the file against them. An image they do not name gets its file stem (a number when the
  stem is one), as for a model trained on KITTI.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torchvision import tv_tensors

from backbonekit.detection.coco import CocoImageIds
from backbonekit.detection.data import data_format
from backbonekit.detection.evaluate_coco import detections_to_coco_results
from backbonekit.detection.kitti import detections_to_kitti, write_kitti_file
from backbonekit.detection.plots import MIN_DRAWN_SIDE, draw_detections
from backbonekit.detection.transforms import eval_transforms, unletterbox_detections
from backbonekit.io.images import find_images, image_to_tensor, read_in_batches
from backbonekit.io.output import output_folder
from backbonekit.training.inference import load_for_inference
from backbonekit.training.run_record import recorded_settings
from backbonekit.training.task_spec import get_task


@torch.inference_mode()
def predict_images(checkpoint: str | Path, paths: list[str], out: str | Path, score_threshold: float = 0.3,
                   save=("png", "kitti", "coco"), batch_size: int = 8, device: str | None = None, *,
                   annotations: list[str | Path] | None = None, skip_bad_images: bool = False,
                   on_image: Callable[[dict], None] | None = None, runtime: str = "torch",
                   precision: str = "fp32") -> dict:
    """Detect, write and report (``on_image(row)``) every image; ``annotations=None`` takes COCO image ids from the
    run's own COCO data, ``[]`` from the file stems."""
    out = output_folder(out) if save else out  # a file there is refused before the model is loaded
    images = find_images(paths)  # so is a missing image: another runtime exports the checkpoint into its run folder
    task, device = load_for_inference(checkpoint, get_task("detect"), device, runtime, precision, batch_size)
    if annotations is None:
        annotations = recorded_coco_files(checkpoint)
    writer = ResultWriter(out, save, task.cfg, CocoImageIds(annotations) if annotations else None)
    transform = eval_transforms(tuple(task.cfg.image_size))
    skipped: list = []
    for chunk in read_in_batches(images, batch_size, skip_bad_images, skipped):
        originals = [tv_tensors.Image(image_to_tensor(image)) for _, image in chunk]
        letterboxed = [transform(image, empty_target(image)) for image in originals]
        batch = letterboxed_batch(letterboxed)
        detections = task.detect(batch.to(device), score_threshold=score_threshold)
        for (path, _), image, (_, target), det in zip(chunk, originals, letterboxed, detections):
            det = unletterbox_detections(det, target["letterbox"])
            row = writer.add(path, image, det, score_threshold)
            if on_image is not None:
                on_image(row)
    return {"images": writer.count, "written": writer.finish(), "skipped": skipped, "notes": writer.notes()}


def recorded_coco_files(checkpoint: str | Path) -> list[str]:
    """The run's COCO annotation files (``--data``, ``--val-data``), where its record names them and they exist."""
    settings = recorded_settings(checkpoint) or {}
    found = []
    for key in ("data", "val_data"):
        path = settings.get(key)
        if path and Path(path).exists() and data_format(path) == "coco":
            found.append(path)
    return found


class ResultWriter:
    """Writes each image's detections in the formats asked for, as they come; the COCO JSON at the end."""

    def __init__(self, out: Path, save, cfg, image_ids: CocoImageIds | None):
        self.out, self.save, self.image_ids = out, tuple(save), image_ids  # out: None when nothing of ours is saved
        self.names = list(cfg.class_names)
        self.category_ids = list(cfg.category_ids) or list(range(1, len(self.names) + 1))
        self.coco_results: list[dict] = []
        self.count, self.unmatched = 0, 0
        if "kitti" in self.save:
            (out / "kitti").mkdir(exist_ok=True)

    def add(self, path: Path, image: torch.Tensor, det: dict, score_threshold: float) -> dict:
        self.count += 1
        if "png" in self.save:
            # a small image is drawn enlarged, so that its labels and legend can be read
            drawn = draw_detections(image, det, self.names, score_threshold=score_threshold, title=path.name,
                                    min_side=MIN_DRAWN_SIDE)
            Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(self.out / f"{path.stem}.png")
        if "kitti" in self.save:
            write_kitti_file(self.out / "kitti" / f"{path.stem}.txt",
                             detections_to_kitti(det["boxes"], det["scores"], det["labels"], self.names))
        if "coco" in self.save:
            self.coco_results += detections_to_coco_results([det], [self.image_id(path)], self.category_ids)
        return {"path": str(path), **detection_fields(det, self.names)}

    def image_id(self, path: Path) -> int | str:
        found = self.image_ids(path) if self.image_ids is not None else None
        if found is not None:
            return found
        self.unmatched += 1
        return int(path.stem) if path.stem.isdigit() else path.stem

    def finish(self) -> list[str]:
        written = []
        if "png" in self.save:
            written.append(f"{self.count} PNGs")
        if "kitti" in self.save:
            written.append(f"KITTI result files in {self.out / 'kitti'}")
        if "coco" in self.save:
            (self.out / "predictions.json").write_text(json.dumps(self.coco_results))
            written.append(f"{self.out / 'predictions.json'}")
        return written

    def notes(self) -> list[str]:
        if "coco" not in self.save or not self.unmatched:
            return []
        if self.image_ids is None:
            return ["COCO image_id: the file stem (no COCO annotation file to take ids from: --annotations)"]
        sources = ", ".join(map(str, self.image_ids.sources))
        return [f"COCO image_id: {self.unmatched} of {self.count} images are not in {sources}; theirs is the file stem"]


def letterboxed_batch(letterboxed: list[tuple]) -> torch.Tensor:
    """The (image, target) pairs of ``eval_transforms`` as one uint8 batch."""
    return torch.stack([image.as_subclass(torch.Tensor) for image, _ in letterboxed])


def detection_fields(det: dict, names: list[str]) -> dict:
    """One image's detections (in its own pixels) as ``predict --format json`` and ``serve`` write them."""
    labels = det["labels"].tolist()
    boxes = [{"class": names[c], "score": round(s, 6), "box": [round(v, 2) for v in b]}
             for c, s, b in zip(labels, det["scores"].tolist(), det["boxes"].tolist())]
    return {"counts": dict(Counter(names[i] for i in labels)), "detections": boxes}


def empty_target(image) -> dict:
    canvas = tuple(image.shape[-2:])
    return {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=canvas),
            "labels": torch.zeros(0, dtype=torch.long)}
