"""Official KITTI 2D detection AP (the object devkit's ``cpp/evaluate_object.cpp``, 2D boxes), in Python.

It reproduces the devkit's numbers to rounding (checked against a build of the 2019 devkit on label sets made to hit
every limit below). Per class and difficulty:

- ground truth counts at a difficulty when it is *taller than* the minimum height and within the occlusion and
  truncation limits, cumulative: Easy = height > 40 px, occlusion 0, truncation ≤ 0.15; Moderate = height > 25
  px, occlusion ≤ 1, truncation ≤ 0.30; Hard = height > 25 px, occlusion ≤ 2, truncation ≤ 0.50. So a box exactly
  40 px tall is not Easy, one exactly 25 px tall counts nowhere, and truncation exactly 0.15 is Easy. Ground truth
  failing its difficulty is ignored: detections may match it, but it is neither found nor missed;
- a detection is ignored at a difficulty when it is *lower than* the minimum height (a 40 px detection is scored at
  Easy, a 39.99 px one is not; the devkit truncates the height to whole pixels first, which decides the same way).
  This holds for detections of every class: a low detection of another class can still take a ground-truth box —
  not a miss then, but no true positive either, and in the first pass (below) it wins on score, so a Pedestrian
  box 39 px tall scoring above the Car detections on the same Cars leaves Car Easy with AP 0 (a devkit quirk, kept);
- an object neither found nor missed (taken by a low detection) still counts among the objects that the recall
  levels are sampled against, so it lowers the AP as a miss would;
- a match needs IoU *greater than* 0.7 (Car) or 0.5 (Pedestrian, Cyclist): exactly 0.7 is no match;
- neighbour classes are ignored ground truth: Van for Car, Person_sitting for Pedestrian (none for Cyclist). Other
  types (Truck, Tram, Misc, Van for Pedestrian, …) play no part: a detection on a Truck is a false positive;
- a detection that matches nothing is not a false positive when it lies in a DontCare region: intersection over the
  detection's own area greater than the class's IoU threshold (exactly 0.7 for a Car is still a false positive);
- precision is sampled at the detection scores that best hit 41 evenly spaced recall levels, made monotone, and AP
  is the mean over the samples 1 … 40 (the 2019+ "R40" metric) or over samples 0, 4, …, 40 (``recall_points=11``,
  the older "R11"), × 100. The devkit assumes at least 40 objects per class and difficulty: with fewer, its AP is
  capped at (n − 1)/40 (see ``average_precision``; ``placement="recall"`` is the small-set-proof alternative).

The matching follows the devkit line by line, quirks included (a first pass picks, per object, the highest-scoring
overlapping detection to find thresholds — the first in file order on ties, and never one scoring −10⁷ or less; a
second pass per threshold picks the best-IoU one, preferring detections that are not ignored). Type names are
compared case-insensitively, as the devkit does (the file reader itself refuses another case than the official one).

Where we differ from the devkit, deliberately:

- a class with no ground truth at a difficulty has AP ``None`` (printed "—", left out of the mean; ``num_gt`` is 0)
  where the devkit prints 0 (without objects there is no true positive, hence no threshold, and every precision
  sample stays 0);
- a precision sample with neither true nor false positives counts as 0; the devkit's 0/0 makes that AP ``nan``
  (a corner case: a low detection and an ignored neighbour swapping the only match);
- the devkit skips a class without detections (exactly: without one whose left edge is ≥ 0) and writes no numbers
  for it; we score it (AP 0 when it has ground truth);
- the images scored are those with a result file (so a validation subset can be scored), as in the devkit's offline
  variants; the official devkit instead requires a result file for every label file — ``every_label=True``;
- malformed lines (wrong field count, unknown type, non-numbers, inverted boxes) are a ``DataError`` naming file and
  line, where the devkit's ``fscanf`` silently skips or misreads them.
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
NO_DETECTION = -10000000.0  # the devkit's "no candidate yet" score: a detection must score higher to be a candidate
NEIGHBOUR_TYPES = {cls.lower(): kind.lower() for cls, kind in NEIGHBOURS.items()}


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
    """The devkit's ``cleanData``: ground truth 0 counted, 1 ignored (neighbour class, or failing the difficulty:
    occlusion or truncation above its limit, or height *at most* its minimum), -1 another class; detections 1 when
    lower than the minimum height (whatever their class), else 0 of the class, -1 another. Types are compared
    case-insensitively."""
    min_height, max_occlusion, max_truncation = DIFFICULTIES[difficulty]
    key, neighbour = cls.lower(), NEIGHBOUR_TYPES.get(cls.lower())
    gt_ignore = []
    for obj in gt:
        kind = obj.type.lower()
        valid = 1 if kind == key else 0 if kind == neighbour else -1
        too_hard = obj.occluded > max_occlusion or obj.truncated > max_truncation or obj.height <= min_height
        gt_ignore.append(0 if valid == 1 and not too_hard else 1 if valid == 0 or valid == 1 else -1)
    det_ignore = [1 if d.height < min_height else 0 if d.type.lower() == key else -1 for d in dets]
    gt_boxes = np.array([o.box for o in gt], dtype=np.float64).reshape(-1, 4)
    det_boxes = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
    dc_boxes = np.array([o.box for o in gt if o.type.lower() == "dontcare"], dtype=np.float64).reshape(-1, 4)
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
        det_index, valid, max_iou, assigned_ignored = -1, NO_DETECTION, 0.0, False
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
            elif valid == NO_DETECTION and case.det_ignore[j] == 1:
                det_index, valid, assigned_ignored = j, 1.0, True
        if valid == NO_DETECTION:
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
                           recall_points: int = 40, placement: str = "devkit", every_label: bool = False) -> dict:
    """Score a folder of KITTI result files (16 fields, one file per image) against ``label_2`` of ``data``.

    The images scored are those with a result file (so a validation subset can be scored); an empty file means no
    detections. A result file without a label file is a ``DataError``; with ``every_label`` (the official devkit's
    rule) so is a label file without a result file.
    """
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise DataError(f"{predictions}: not a folder of KITTI result files")
    label_dir = resolve_kitti_root(data) / "label_2"
    result_files = sorted(predictions.glob("*.txt"))
    if not result_files:
        raise DataError(f"{predictions}: no result files (*.txt)")
    if every_label:
        names = {path.name for path in result_files}
        for label in sorted(label_dir.glob("*.txt")):
            if label.name not in names:
                raise DataError(f"{label}: no result file {predictions / label.name} (every label file needs one, "
                                "empty for an image without detections)")
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
