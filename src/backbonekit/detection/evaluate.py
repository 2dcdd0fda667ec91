"""A trained detector on a data set: detections in original pixels, COCO mAP (pycocotools) on every format, the
official-style KITTI AP on KITTI data, PR curves and a picture of predicted vs true boxes.

The ground truth is the data set's own annotations in original pixels (not the letterboxed targets), so the figures
are those the official tools would give for the same detections; the detections are written next to the metrics
(COCO results JSON; KITTI result files too on KITTI data) so any other tool can score them again.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from backbonekit.detection.coco import CocoDetection, read_json
from backbonekit.detection.evaluate_coco import coco_in_percent, detections_to_coco_results, evaluate_coco
from backbonekit.detection.evaluate_kitti import evaluate_kitti
from backbonekit.detection.kitti import KittiDetection, detections_to_kitti, write_kitti_file
from backbonekit.detection.plots import MIN_DRAWN_SIDE, draw_detections, plot_pr_curves, save_detection_grid
from backbonekit.detection.task import DetectionTask
from backbonekit.detection.transforms import collate, content_size, unletterbox_detections


@torch.inference_mode()
def run_detector(task: DetectionTask, dataset, batch_size: int = 8, keep_images: int = 0, workers: int = 0):
    """Detections of every image of ``dataset`` (letterboxing val transforms) mapped back to original pixels and
    clipped to the image, and the first ``keep_images`` images as the network saw them (the letterbox padding cut
    off) drawn with true boxes and those same clipped predictions."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=workers)
    detections, drawn = [], []
    device = task.device  # the LightningModule's, or an ONNX runtime's (the CPU)
    names = image_names(dataset)
    for images, targets in loader:
        for det, target, image in zip(task.detect(images.to(device)), targets, images):
            det = unletterbox_detections(det, target["letterbox"])
            if len(drawn) < keep_images:
                title = names[len(detections)] if len(detections) < len(names) else None
                drawn.append(draw_letterboxed(image, det, target, task.cfg.class_names, title))
            detections.append(det)
    return detections, drawn


def draw_letterboxed(image: torch.Tensor, detections: dict, target: dict, class_names: list[str],
                     title: str | None) -> torch.Tensor:
    """A letterboxed input cut to the image inside it, with its true boxes and ``detections`` (original pixels)."""
    height, width = content_size(target["letterbox"])
    scale = target["letterbox"][:2].repeat(2)
    shown = {**detections, "boxes": detections["boxes"] * scale}  # back into input pixels, still inside the image
    return draw_detections(image[..., :height, :width], shown, class_names, target, title=title,
                           min_side=MIN_DRAWN_SIDE)


def image_names(dataset) -> list[str]:
    """The file name of each image of ``dataset``, in order, for the drawings ([] for a data set of another kind)."""
    if isinstance(dataset, CocoDetection):
        return [Path(img["file_name"]).name for img in dataset.images]
    if isinstance(dataset, KittiDetection):
        return [record.image.name for record in dataset.records]
    return []


def coco_ground_truth(dataset) -> tuple[dict, list, list[int]]:
    """COCO ground truth of exactly the images of ``dataset`` (a split), their image ids, and label → category id.

    For KITTI the kept classes become categories 1…K, and each ignore region (DontCare, neighbour types) a crowd box
    of every category: pycocotools then neither rewards nor punishes detections inside it, as KITTI's devkit does.
    """
    if isinstance(dataset, CocoDetection):
        data = read_json(dataset.annotation_file)
        ids = [img["id"] for img in dataset.images]
        chosen = set(ids)
        gt = {**data, "images": [img for img in data["images"] if img["id"] in chosen],
              "annotations": [a for a in data["annotations"] if a["image_id"] in chosen]}
        return gt, ids, list(dataset.category_ids)
    if not isinstance(dataset, KittiDetection):
        raise TypeError(f"no ground truth for {type(dataset).__name__}")
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(dataset.classes)]
    images, annotations = [], []
    for index, record in enumerate(dataset.records):
        images.append({"id": index, "file_name": record.image.name, "height": record.size[0],
                       "width": record.size[1]})
        for obj in record.objects:
            if obj.type in dataset.classes:
                owners = [dataset.classes.index(obj.type) + 1]
                crowd = 0
            elif obj.type in dataset.ignore_types:
                owners, crowd = [c["id"] for c in categories], 1
            else:
                continue
            x1, y1, x2, y2 = _clip(obj.box, record.size)
            for category in owners:
                annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": category,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                    "iscrowd": crowd})
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, list(range(len(images))), [c["id"] for c in categories]


def _clip(box, size):
    h, w = size
    x1, y1, x2, y2 = box
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def evaluate_on(task: DetectionTask, dataset, out_dir: str | Path, batch_size: int = 8, draw: int = 8,
                workers: int = 0, metrics_file: bool = True) -> dict:
    """Score ``task`` on ``dataset``; writes ``metrics.json``, ``predictions.json`` (COCO results) with the
    ``ground_truth.json`` they were scored against, KITTI result
    files under ``kitti_results/`` (KITTI data), ``pr_curves.png`` and ``val_predictions.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    detections, drawn = run_detector(task, dataset, batch_size, keep_images=draw, workers=workers)
    gt, image_ids, category_ids = coco_ground_truth(dataset)
    results = detections_to_coco_results(detections, image_ids, category_ids)
    (out / "ground_truth.json").write_text(json.dumps(gt))
    (out / "predictions.json").write_text(json.dumps(results))
    coco = evaluate_coco(gt, results, curves=True)
    curves = coco.pop("pr_curves_50")
    coco = coco_in_percent(coco)
    metrics = {"images": len(dataset), "coco": coco}
    if isinstance(dataset, KittiDetection):
        folder = out / "kitti_results"
        folder.mkdir(exist_ok=True)
        kitti_dets = [detections_to_kitti(d["boxes"], d["scores"], d["labels"], dataset.classes)
                      for d in detections]
        for record, objects in zip(dataset.records, kitti_dets):
            write_kitti_file(folder / f"{record.label.stem}.txt", objects)
        metrics["kitti"] = evaluate_kitti([r.objects for r in dataset.records], kitti_dets, dataset.classes)
    if metrics_file:  # eval detect writes it (and metrics.csv) through the grammar of every eval (io/output.py)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_pr_curves(curves, coco["per_class_ap50"], out / "pr_curves.png")
    if drawn:
        save_detection_grid(drawn, out / "val_predictions.png")
    return metrics
