"""``predict detect``: a trained detector on image files → PNGs with boxes, KITTI result files, COCO results JSON.

Images are letterboxed to the detector's input size and the boxes mapped back to original pixels, so the written
boxes fit the files given. KITTI result files hold the 16 fields with the fields a 2D detector does not estimate
set as the devkit expects; COCO results use the file stem as ``image_id`` (a number when the stem is one) and the
training data's category ids.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from PIL import Image

from backbonekit.detection.evaluate_coco import detections_to_coco_results
from backbonekit.detection.kitti import detections_to_kitti, load_image, write_kitti_file
from backbonekit.detection.plots import draw_detections
from backbonekit.detection.transforms import eval_transforms, unletterbox_boxes
from backbonekit.io.images import find_images
from backbonekit.io.output import output_folder
from backbonekit.training.inference import load_for_inference
from backbonekit.training.task_spec import get_task


@torch.inference_mode()
def predict_images(checkpoint: str | Path, paths: list[str], out: str | Path, score_threshold: float = 0.3,
                   save=("png", "kitti", "coco"), batch_size: int = 8, device: str | None = None) -> dict:
    out = output_folder(out)  # a file there is refused before the model is loaded
    task, device = load_for_inference(checkpoint, get_task("detect"), device)
    names = task.cfg.class_names
    category_ids = list(task.cfg.category_ids) or list(range(1, len(names) + 1))
    files = find_images(paths)
    if "kitti" in save:
        (out / "kitti").mkdir(exist_ok=True)
    transform = eval_transforms(tuple(task.cfg.image_size))
    rows, coco_results = [], []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        originals = [load_image(path) for path in chunk]
        letterboxed = [transform(image, _empty_target(image)) for image in originals]
        batch = torch.stack([image.as_subclass(torch.Tensor) for image, _ in letterboxed])
        for path, image, (_, target), det in zip(chunk, originals, letterboxed,
                                                 task.detect(batch.to(device), score_threshold=score_threshold)):
            det = {k: v.cpu() for k, v in det.items()}
            det["boxes"] = unletterbox_boxes(det["boxes"], target["letterbox"])
            rows.append({"path": str(path), "counts": dict(Counter(names[i] for i in det["labels"].tolist()))})
            if "png" in save:
                drawn = draw_detections(image, det, names, score_threshold=score_threshold)
                Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(out / f"{path.stem}.png")
            if "kitti" in save:
                write_kitti_file(out / "kitti" / f"{path.stem}.txt",
                                 detections_to_kitti(det["boxes"], det["scores"], det["labels"], names))
            if "coco" in save:
                image_id = int(path.stem) if path.stem.isdigit() else path.stem
                coco_results += detections_to_coco_results([det], [image_id], category_ids)
    written = []
    if "png" in save:
        written.append(f"{len(files)} PNGs")
    if "kitti" in save:
        written.append(f"KITTI result files in {out / 'kitti'}")
    if "coco" in save:
        (out / "predictions.json").write_text(json.dumps(coco_results))
        written.append(f"{out / 'predictions.json'}")
    return {"images": rows, "written": written}


def _empty_target(image) -> dict:
    from torchvision import tv_tensors

    canvas = tuple(image.shape[-2:])
    return {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=canvas),
            "labels": torch.zeros(0, dtype=torch.long)}
