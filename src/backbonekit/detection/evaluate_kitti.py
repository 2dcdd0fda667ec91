"""Official-style KITTI 2D detection AP (the devkit's ``evaluate_object`` for bounding boxes), in Python.

Per class and difficulty (REFERENCE §3):
- difficulty filters on ground truth, cumulative: Easy = height ≥ 40 px, occlusion 0, truncation ≤ 0.15; Moderate =
  ≥ 25 px, occlusion ≤ 1, truncation ≤ 0.30; Hard = ≥ 25 px, occlusion ≤ 2, truncation ≤ 0.50;
- a true positive needs IoU > 0.7 (Car) or > 0.5 (Pedestrian, Cyclist);
- ignored — neither true nor false positive, nor missed: ground truth of the neighbour class (Van for Car,
  Person_sitting for Pedestrian), ground truth failing the difficulty filter, detections lower than the difficulty's
  minimum height, and detections lying in a DontCare region (intersection over the detection's area > the class's
  IoU threshold);
- precision is sampled at the detection scores that best hit 41 evenly spaced recall levels, made monotone, and AP
  is the mean over recall 1/40 … 40/40 (the 2019+ "R40" metric; ``recall_points=11`` gives the old one), × 100.
  The devkit assumes at least 40 objects per class and difficulty: with fewer, its AP is capped at (n − 1)/40
  (see ``average_precision``; ``placement="recall"`` is the small-set-proof alternative).

The matching follows the devkit line by line, quirks included (a first pass picks, per object, the highest-scoring
overlapping detection to find thresholds; a second pass per threshold picks the best-IoU one). A class with no
ground truth at a difficulty has AP ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backbonekit.detection.kitti import DEFAULT_CLASSES, NEIGHBOURS, KittiObject, read_kitti_file, resolve_kitti_root
from backbonekit.errors import ConfigError, DataError

DIFFICULTIES = {"easy": (40, 0, 0.15), "moderate": (25, 1, 0.30), "hard": (25, 2, 0.50)}  # min height, occ, trunc
MIN_OVERLAP = {"Car": 0.7, "Van": 0.7, "Truck": 0.7, "Tram": 0.7, "Misc": 0.7,
               "Pedestrian": 0.5, "Person_sitting": 0.5, "Cyclist": 0.5}
NUM_SAMPLE_POINTS = 41


def box_overlap(a: np.ndarray, b: np.ndarray, over_first: bool = False) -> np.ndarray:
    """(N, M) IoU of xyxy boxes, or with ``over_first`` intersection / area of a[i] (the DontCare test)."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    if over_first:
        denominator = np.broadcast_to(area_a, inter.shape)
    else:
        area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
        denominator = area_a + area_b - inter
    return np.divide(inter, denominator, out=np.zeros_like(inter), where=denominator > 0)


@dataclass
class ImageCase:
    """One image, cleaned for one class and difficulty: ignore flags (0 counted, 1 ignored, -1 other class)."""
    gt_ignore: np.ndarray
    det_ignore: np.ndarray
    scores: np.ndarray
    iou: np.ndarray  # (gt, det)
    dontcare: np.ndarray  # (dontcare, det): intersection over detection area


def clean_image(gt: list[KittiObject], dets: list[KittiObject], cls: str, difficulty: str) -> ImageCase:
    min_height, max_occlusion, max_truncation = DIFFICULTIES[difficulty]
    gt_ignore = []
    for obj in gt:
        if obj.type == cls:
            valid = 1
        elif NEIGHBOURS.get(cls) == obj.type:
            valid = 0
        else:
            valid = -1
        too_hard = (obj.occluded > max_occlusion or obj.truncated > max_truncation or obj.height < min_height)
        gt_ignore.append(0 if valid == 1 and not too_hard else 1 if valid == 0 or valid == 1 else -1)
    det_ignore = [1 if d.height < min_height else 0 if d.type == cls else -1 for d in dets]
    gt_boxes = np.array([o.box for o in gt], dtype=np.float64).reshape(-1, 4)
    det_boxes = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
    dc_boxes = np.array([o.box for o in gt if o.type == "DontCare"], dtype=np.float64).reshape(-1, 4)
    return ImageCase(np.array(gt_ignore, dtype=int), np.array(det_ignore, dtype=int),
                     np.array([d.score for d in dets], dtype=np.float64),
                     box_overlap(det_boxes, gt_boxes).T, box_overlap(det_boxes, dc_boxes, over_first=True).T)


def image_statistics(case: ImageCase, min_overlap: float, threshold: float | None):
    """The devkit's ``computeStatistics``. ``threshold=None``: the first pass, returning the scores of true
    positives; otherwise (tp, fp, fn) counting only detections scoring ≥ ``threshold``."""
    compute_fp = threshold is not None
    n_det = len(case.scores)
    assigned = np.zeros(n_det, dtype=bool)
    below = case.scores < threshold if compute_fp else np.zeros(n_det, dtype=bool)
    tp = fp = fn = 0
    tp_scores = []
    for i, gt_flag in enumerate(case.gt_ignore):
        if gt_flag == -1:
            continue
        det_index, valid, max_iou, assigned_ignored = -1, -np.inf, 0.0, False  # valid = -inf: no detection yet
        for j in range(n_det):
            if case.det_ignore[j] == -1 or assigned[j] or below[j]:
                continue
            overlap = case.iou[i, j]
            if overlap <= min_overlap:
                continue
            if not compute_fp:
                if case.scores[j] > valid:
                    det_index, valid = j, case.scores[j]
            elif (overlap > max_iou or assigned_ignored) and case.det_ignore[j] == 0:
                det_index, valid, max_iou, assigned_ignored = j, 1.0, overlap, False
            elif valid == -np.inf and case.det_ignore[j] == 1:
                det_index, valid, assigned_ignored = j, 1.0, True
        if valid == -np.inf:
            fn += gt_flag == 0
        elif gt_flag == 1 or case.det_ignore[det_index] == 1:
            assigned[det_index] = True
        else:
            tp += 1
            tp_scores.append(case.scores[det_index])
            assigned[det_index] = True
    if not compute_fp:
        return tp_scores
    counted = ~(assigned | (case.det_ignore != 0) | below)
    fp = int(counted.sum())
    # Unassigned counted detections inside a DontCare region are not false positives.
    for region in case.dontcare:
        inside = counted & (region > min_overlap)
        fp -= int(inside.sum())
        counted &= ~inside
    return tp, fp, fn


def score_thresholds(tp_scores: list[float], n_gt: int, points: int = NUM_SAMPLE_POINTS) -> list[float]:
    """The devkit's ``getThresholds``: the scores at which recall best reaches each of the sampled recall levels."""
    scores = sorted(tp_scores, reverse=True)
    thresholds, current = [], 0.0
    for i, score in enumerate(scores):
        left = (i + 1) / n_gt
        right = (i + 2) / n_gt if i < len(scores) - 1 else left
        if right - current < current - left and i < len(scores) - 1:
            continue
        thresholds.append(score)
        current += 1.0 / (points - 1.0)
    return thresholds


def average_precision(cases: list[ImageCase], min_overlap: float, recall_points: int = 40,
                      placement: str = "devkit") -> float | None:
    """AP × 100 over ``recall_points`` (40 or 11) recall levels; ``None`` without ground truth.

    ``placement="devkit"`` puts the k-th precision sample at recall level k, as the devkit does: exact when there are
    at least 40 objects, but with n < 40 objects the samples run out and even perfect detections score only
    (n − 1)/40 (R40). ``"recall"`` places each sample at the recall it actually reaches (interpolated precision:
    the best at that recall or higher), which stays right for small sets and agrees with the devkit on large ones.
    """
    if recall_points not in (40, 11):
        raise ValueError("recall_points must be 40 or 11")
    if placement not in ("devkit", "recall"):
        raise ValueError("placement must be 'devkit' or 'recall'")
    n_gt = int(sum((c.gt_ignore == 0).sum() for c in cases))
    if n_gt == 0:
        return None
    tp_scores = [s for c in cases for s in image_statistics(c, min_overlap, None)]
    thresholds = score_thresholds(tp_scores, n_gt)
    precision, recall = np.zeros(len(thresholds)), np.zeros(len(thresholds))
    for k, t in enumerate(thresholds):
        tp = fp = fn = 0
        for case in cases:
            if not len(case.scores) or case.scores.max() < t:  # nothing left above t: only misses
                fn += int((case.gt_ignore == 0).sum())
                continue
            a, b, c = image_statistics(case, min_overlap, t)
            tp, fp, fn = tp + a, fp + b, fn + c
        precision[k] = tp / (tp + fp) if tp + fp else 0.0
        recall[k] = tp / (tp + fn) if tp + fn else 0.0
    levels = np.linspace(0, 1, NUM_SAMPLE_POINTS)
    if placement == "devkit":
        sampled = np.zeros(max(NUM_SAMPLE_POINTS, len(thresholds)))
        sampled[:len(thresholds)] = precision
        sampled = np.maximum.accumulate(sampled[::-1])[::-1][:NUM_SAMPLE_POINTS]  # best at this or higher recall
    else:
        sampled = np.array([precision[recall >= r - 1e-9].max(initial=0.0) for r in levels])
    if recall_points == 40:
        return float(sampled[1:].sum() / 40 * 100)
    return float(sampled[::4].sum() / 11 * 100)


def evaluate_kitti(ground_truth: list[list[KittiObject]], detections: list[list[KittiObject]],
                   classes=DEFAULT_CLASSES, recall_points: int = 40, placement: str = "devkit") -> dict:
    """AP per class and difficulty for images given as lists of objects (detections carry ``score``).

    Returns ``{"ap": {cls: {"easy", "moderate", "hard"}}, "num_gt": {cls: {...}}, "mean": {difficulty: mAP}}``.
    """
    if len(ground_truth) != len(detections):
        raise ValueError("one list of detections per image of ground truth")
    for cls in classes:
        if cls not in MIN_OVERLAP:
            raise ConfigError(f"cannot score KITTI class {cls!r} (choose from {', '.join(MIN_OVERLAP)})")
    result = {"ap": {}, "num_gt": {}, "mean": {}, "recall_points": recall_points, "placement": placement}
    for cls in classes:
        result["ap"][cls], result["num_gt"][cls] = {}, {}
        for difficulty in DIFFICULTIES:
            cases = [clean_image(g, d, cls, difficulty) for g, d in zip(ground_truth, detections)]
            result["ap"][cls][difficulty] = average_precision(cases, MIN_OVERLAP[cls], recall_points, placement)
            result["num_gt"][cls][difficulty] = int(sum((c.gt_ignore == 0).sum() for c in cases))
    for difficulty in DIFFICULTIES:
        values = [result["ap"][c][difficulty] for c in classes if result["ap"][c][difficulty] is not None]
        result["mean"][difficulty] = float(np.mean(values)) if values else None
    return result


def evaluate_kitti_folders(predictions: str | Path, data: str | Path, classes=DEFAULT_CLASSES,
                           recall_points: int = 40, placement: str = "devkit") -> dict:
    """Score a folder of KITTI result files (16 fields, one file per image) against ``label_2`` of ``data``.

    The images scored are those with a result file (so a validation subset can be scored); an empty file means no
    detections. A result file without a label file is a ``DataError``.
    """
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise DataError(f"{predictions}: not a folder of KITTI result files")
    label_dir = resolve_kitti_root(data) / "label_2"
    result_files = sorted(predictions.glob("*.txt"))
    if not result_files:
        raise DataError(f"{predictions}: no result files (*.txt)")
    ground_truth, detections = [], []
    for path in result_files:
        label = label_dir / path.name
        if not label.is_file():
            raise DataError(f"{path}: no label file {label}")
        ground_truth.append(read_kitti_file(label, with_score=False))
        detections.append(read_kitti_file(path, with_score=True))
    result = evaluate_kitti(ground_truth, detections, classes, recall_points, placement)
    result["num_images"] = len(result_files)
    return result
