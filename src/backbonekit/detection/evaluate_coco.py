"""COCO box mAP with pycocotools' ``COCOeval`` (the reference implementation): mAP@[.5:.95], mAP@.5, mAP@.75,
by object size, and AP per class.

Inputs are COCO ground truth (a dict or JSON file) and COCO *results* — a list of
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (a dict, a list or a JSON file) — so detections from
any detector score on equal terms. ``detections_to_coco_results`` turns our xyxy/0-based-label detections into that
format. pycocotools prints its progress; we silence it and return numbers.
"""
from __future__ import annotations

import contextlib
import copy
import io
import numbers
from pathlib import Path

import numpy as np

from backbonekit.detection.coco import parse_coco, read_json
from backbonekit.errors import DataError

SUMMARY_NAMES = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def load_coco_gt(gt: dict | str | Path):
    """A pycocotools ``COCO`` from a dict or file, validated, with ``area``/``iscrowd`` filled in where missing."""
    from pycocotools.coco import COCO

    source = "ground truth"
    if not isinstance(gt, dict):
        source, gt = str(gt), read_json(gt)
    parse_coco(gt, source)
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", ann["bbox"][2] * ann["bbox"][3])
    coco = COCO()
    coco.dataset = gt
    with _quiet():
        coco.createIndex()
    return coco


def check_results(results: list, coco, source: str) -> list[dict]:
    """Each result must name a known image and category and hold a 4-number bbox and a score."""
    if not isinstance(results, list):
        raise DataError(f"{source}: expected a JSON list of detections")
    image_ids, category_ids = set(coco.getImgIds()), set(coco.getCatIds())
    for i, r in enumerate(results):
        where = f"{source}: detection [{i}]"
        if not isinstance(r, dict):
            raise DataError(f"{where}: expected an object")
        for name in ("image_id", "category_id", "bbox", "score"):
            if name not in r:
                raise DataError(f"{where}: missing field '{name}'")
        if r["image_id"] not in image_ids:
            raise DataError(f"{where}: field 'image_id' names an image not in the ground truth: {r['image_id']!r}")
        if r["category_id"] not in category_ids:
            raise DataError(f"{where}: field 'category_id' names an unknown category: {r['category_id']!r}")
        box = r["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, numbers.Real) for v in box)):
            raise DataError(f"{where}: field 'bbox' must be 4 numbers [x, y, width, height], found {box!r}")
        if not isinstance(r["score"], numbers.Real):
            raise DataError(f"{where}: field 'score' must be a number, found {r['score']!r}")
    return results


def evaluate_coco(gt: dict | str | Path, results: list | str | Path, curves: bool = False) -> dict:
    """``{"mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large", "per_class": {name: AP},
    "per_class_ap50": {name: AP50}, "num_images", "num_detections"}``; AP in [0, 1], ``None`` where pycocotools
    has nothing to average (e.g. a class without ground truth). ``curves`` adds ``pr_curves_50``: per class the
    precision at pycocotools' 101 recall points (0, 0.01, …, 1) at IoU 0.5, -1 where the recall is not reached."""
    from pycocotools.cocoeval import COCOeval

    coco_gt = load_coco_gt(gt)
    source = "results"
    if not isinstance(results, list):
        source, results = str(results), read_json(results)
    results = copy.deepcopy(check_results(results, coco_gt, source))
    categories = coco_gt.loadCats(coco_gt.getCatIds())
    out = {"num_images": len(coco_gt.getImgIds()), "num_detections": len(results)}
    if not results:  # pycocotools cannot load an empty result list; nothing detected scores 0
        out.update({name: 0.0 for name in SUMMARY_NAMES})
        out["per_class"] = {c["name"]: 0.0 for c in categories}
        out["per_class_ap50"] = dict(out["per_class"])
        if curves:
            out["pr_curves_50"] = {c["name"]: [-1.0] * 101 for c in categories}
        return out
    with _quiet():
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    for name, value in zip(SUMMARY_NAMES, evaluator.stats):
        out[name] = float(value) if value >= 0 else None
    # precision: [IoU thresholds, recall points, categories, area ranges, max dets]; area "all", 100 detections.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    out["per_class"], out["per_class_ap50"] = {}, {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        name = coco_gt.cats[int(cat_id)]["name"]
        out["per_class"][name] = _mean_valid(precision[:, :, k])
        out["per_class_ap50"][name] = _mean_valid(precision[0, :, k])
    if curves:
        out["pr_curves_50"] = {coco_gt.cats[int(cat_id)]["name"]: precision[0, :, k].round(5).tolist()
                               for k, cat_id in enumerate(evaluator.params.catIds)}
    return out


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def detections_to_coco_results(detections: list[dict], image_ids: list, category_ids: list[int]) -> list[dict]:
    """Our detections (per image ``boxes`` xyxy, ``scores``, 0-based ``labels``) → COCO results, with
    ``category_ids[label]`` mapping labels back to the data set's category ids."""
    results = []
    for image_id, det in zip(image_ids, detections):
        boxes = det["boxes"].detach().cpu().double().numpy().reshape(-1, 4)
        for (x1, y1, x2, y2), score, label in zip(boxes, det["scores"].tolist(), det["labels"].tolist()):
            results.append({"image_id": image_id, "category_id": category_ids[int(label)],
                            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                            "score": round(float(score), 5)})
    return results


def coco_in_percent(result: dict) -> dict:
    """``evaluate_coco``'s result with every AP in percent (as the tool prints and writes every score)."""
    def pct(v):
        return None if v is None else 100 * v
    out = {k: (pct(v) if k.startswith("mAP") else v) for k, v in result.items()}
    for key in ("per_class", "per_class_ap50"):
        if key in out:
            out[key] = {name: pct(v) for name, v in out[key].items()}
    return {"unit": "percent", **out}
