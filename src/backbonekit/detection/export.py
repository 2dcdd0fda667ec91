"""ONNX export of a trained detector: normalisation, network, decoding and NMS in one graph.

Detector graph (``DetectorForExport``; what ``backbonekit export`` writes for a ``train detect`` checkpoint):

- input ``images``: (B, 3, H, W) RGB, uint8 0–255 (or float32 0–1 with ``input_dtype="float32"``). H, W are fixed: the
  checkpoint's ``image_size``, because the anchors are constants of the graph; letterbox first, as ``predict detect``
  does. B is dynamic.
- outputs, padded to ``max_detections`` (M, default the checkpoint's 100) slots per image, as TensorRT's
  ``EfficientNMS`` plugin lays them out:

  - ``num_detections`` (B,) int64: how many slots of each image hold a detection;
  - ``boxes`` (B, M, 4) float32: xyxy in input pixels, clipped to the input (a box with no area left is dropped).
    The graph sees only the letterboxed input: map the boxes back to the original image (divide by the letterbox
    scale) and clip them to it, dropping those left with no area (they lay in the padding), as ``predict detect``
    does for every runtime (``transforms.unletterbox_detections``);
  - ``scores`` (B, M) float32: sigmoid class probability;
  - ``labels`` (B, M) int64: 0-based class index (``class_names`` order).

  Slots are sorted by score; those past ``num_detections`` hold zeros and label -1.

Inside the graph: the task's normalisation (``nn/normalize.py``) → EfficientDet → the ``max_candidates`` (5000) best
class logits per image → their boxes decoded from the anchors and clipped (no area left: dropped) → sigmoid → score >
threshold → per-class NMS (IoU > 0.5 suppresses) → the best ``max_detections`` per image. That is
``DetectionTask.detect`` step for step (``postprocess.py``), with the score threshold and the limits frozen at export
time. Among exactly equal scores the order, and so which box NMS keeps, is arbitrary here as in PyTorch.

NMS is ONNX's own ``NonMaxSuppression``, which runs per (image, class) by itself. PyTorch has no such operator, so
the wrapper calls ``backbonekit::class_nms``, a custom op whose eager implementation is torchvision's ``nms`` class
by class and whose ONNX translation is that one node. torchvision's ``batched_nms`` trick for tracing (shift each
class's boxes apart by class × largest coordinate, then one NMS) would need image × class offsets for a batch and
loses float32 precision on the IoUs once they reach the hundreds of thousands (90 classes × 8 images × 512 px).

Exporting needs ``onnx`` and ``onnxscript`` (``pip install 'backbonekit[export]'``: torch's dynamo-based exporter);
checking the file needs ``onnxruntime``.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torchvision.ops import nms

from backbonekit.detection.postprocess import has_area, postprocess
from backbonekit.errors import ConfigError
from backbonekit.io.onnx_export import (
    BOX_TOLERANCE, DEFAULT_OPSET, SCORE_TOLERANCE, ExportResult, example_images, export_module, file_metadata,
    run_onnx,
)
from backbonekit.models.anchors import decode_boxes

DETECTOR_OUTPUTS = ("num_detections", "boxes", "scores", "labels")
# Relative noise somewhat above that by which two runtimes' float32 network outputs differ (about 1e-6), in a few
# draws: enough to find the near-ties that rounding decides.
JITTER, JITTER_TRIALS = 1e-5, 3


# ---------------------------------------------------------------------------------------------- the NMS op
@torch.library.custom_op("backbonekit::class_nms", mutates_args=())
def class_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
              iou_threshold: float, score_threshold: float) -> torch.Tensor:
    """Boxes (B, K, 4) xyxy, scores (B, K) and labels (B, K) → (S, 2) int64 rows (image, candidate) that survive:
    score > ``score_threshold``, then NMS among the boxes of one image and one label (IoU > ``iou_threshold``
    suppresses). Rows come in no particular order (ONNX's ``NonMaxSuppression`` groups them by class)."""
    rows = []
    for image, (b, s, c) in enumerate(zip(boxes, scores, labels)):
        for label in c[s > score_threshold].unique().tolist():
            index = torch.nonzero((c == label) & (s > score_threshold)).reshape(-1)
            kept = index[nms(b[index], s[index], iou_threshold)]
            rows.append(torch.stack([torch.full_like(kept, image), kept], 1))
    return torch.cat(rows) if rows else torch.zeros(0, 2, dtype=torch.int64, device=boxes.device)


@class_nms.register_fake
def _class_nms_shape(boxes, scores, labels, num_classes, iou_threshold, score_threshold):
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(), 2), dtype=torch.int64)


def _class_nms_onnx_translation():
    """``backbonekit::class_nms`` as ONNX: one ``NonMaxSuppression`` over (B, classes, K) scores in which each
    candidate scores only under its own label (-1 elsewhere, below any threshold)."""
    from onnxscript import opset18 as op

    def class_nms_onnx(boxes, scores, labels, num_classes: int, iou_threshold: float, score_threshold: float):
        classes = op.Constant(value_ints=list(range(num_classes)))
        own = op.Equal(op.Unsqueeze(labels, [1]), op.Reshape(classes, op.Constant(value_ints=[1, -1, 1])))
        per_class = op.Where(own, op.Unsqueeze(scores, [1]), op.CastLike(op.Constant(value_float=-1.0), scores))
        selected = op.NonMaxSuppression(boxes, per_class, op.Constant(value_int=2**62),
                                        op.Constant(value_float=iou_threshold),
                                        op.Constant(value_float=score_threshold))  # (S, 3): image, class, box
        return op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)

    return {torch.ops.backbonekit.class_nms.default: class_nms_onnx}


# ------------------------------------------------------------------------------------------------ wrappers
class DetectorForExport(nn.Module):
    """A ``DetectionTask`` as one function of the images; the graph contract is in the module docstring."""

    def __init__(self, task, score_threshold: float | None = None, iou_threshold: float = 0.5,
                 max_candidates: int = 5000, max_detections: int | None = None):
        super().__init__()
        cfg = task.cfg
        self.net = task.model
        self.num_classes = cfg.num_classes
        self.score_threshold = float(cfg.score_threshold if score_threshold is None else score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(cfg.max_detections if max_detections is None else max_detections)
        self.num_candidates = min(max_candidates, len(task.anchors) * cfg.num_classes)
        if not 0 <= self.score_threshold < 1:
            raise ConfigError(f"--score-threshold must be in [0, 1), got {self.score_threshold}")
        if self.max_detections < 1:
            raise ConfigError(f"--max-detections must be at least 1, got {self.max_detections}")
        self.normalize = task.normalize
        self.register_buffer("anchor_boxes", task.anchors.boxes.detach().clone(), persistent=False)
        height, width = cfg.image_size
        self.register_buffer("box_limits", torch.tensor([width, height, width, height], dtype=torch.float32),
                             persistent=False)

    def forward(self, images: torch.Tensor):
        logits, codes = self.net.forward_flat(self.normalize(images))
        boxes, scores, labels = self.candidates(logits, codes)
        kept = class_nms(boxes, scores, labels, self.num_classes, self.iou_threshold, self.score_threshold)
        return self.pad(kept, boxes, scores, labels, images.shape[0])

    def candidates(self, logits: torch.Tensor, codes: torch.Tensor):
        """The best logits of each image over anchors × classes, best first, with decoded clipped boxes."""
        batch = logits.shape[0]
        top_logits, top_index = logits.reshape(batch, -1).topk(self.num_candidates, dim=1)
        anchor_index, labels = top_index // self.num_classes, top_index % self.num_classes
        top_codes = torch.gather(codes, 1, anchor_index.unsqueeze(-1).expand(-1, -1, 4))
        boxes = decode_boxes(top_codes.float(), self.anchor_boxes[anchor_index])
        boxes = torch.minimum(boxes.clamp(min=0), self.box_limits)  # clip_boxes_to_image, as one traceable op
        # A box with no area left after clipping scores 0, below any threshold: dropped, as postprocess drops it.
        scores = torch.where(has_area(boxes), top_logits.float().sigmoid(), 0.0)
        return boxes, scores, labels

    def pad(self, kept: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, batch):
        """NMS survivors → the padded per-image outputs. Candidates are numbered best first, so sorting survivors by
        (image, candidate) sorts each image's by score; a survivor's rank is the count of its image's rows so far."""
        key = kept[:, 0] * self.num_candidates + kept[:, 1]
        image, candidate = kept[key.argsort()].unbind(1)
        same_image = image.unsqueeze(1) == torch.arange(batch, device=image.device).unsqueeze(0)  # (S, B)
        rank = (same_image.long().cumsum(0) * same_image).sum(1) - 1
        keep = rank < self.max_detections
        image, candidate, rank = image[keep], candidate[keep], rank[keep]
        out_boxes = boxes.new_zeros(batch, self.max_detections, 4)
        out_scores = scores.new_zeros(batch, self.max_detections)
        out_labels = labels.new_full((batch, self.max_detections), -1)
        out_boxes[image, rank] = boxes[image, candidate]
        out_scores[image, rank] = scores[image, candidate]
        out_labels[image, rank] = labels[image, candidate]
        num_detections = same_image.sum(0).clamp(max=self.max_detections)
        return num_detections, out_boxes, out_scores, out_labels


def export_detector_onnx(task, path: str | Path, opset: int = DEFAULT_OPSET, score_threshold: float | None = None,
                         iou_threshold: float = 0.5, max_detections: int | None = None,
                         input_dtype: str = "uint8") -> ExportResult:
    """Write ``task`` (a ``DetectionTask``) as an ONNX file with decoding and NMS inside (module docstring)."""
    wrapper = DetectorForExport(task, score_threshold, iou_threshold, max_detections=max_detections).eval()
    example = example_images(2, tuple(task.cfg.image_size), input_dtype)
    return export_module(wrapper, example, path, opset, DETECTOR_OUTPUTS, _class_nms_onnx_translation,
                         metadata=detector_metadata(task, wrapper, input_dtype))


def detector_metadata(task, wrapper: "DetectorForExport", input_dtype: str) -> dict:
    """The file's metadata_props: classes indexed by ``labels``, the letterbox the boxes are in, the frozen
    thresholds."""
    height, width = task.cfg.image_size
    return file_metadata("detect", task.model.model_name, task.cfg.class_names, (height, width), task.normalize,
                         input_dtype, f"letterbox to {height}x{width}: resize keeping the aspect ratio, pad right "
                         "and bottom with 0; boxes come out in these input pixels, clipped to the input: divide by "
                         "the resize scale and clip to the original image, dropping boxes left with no area",
                         score_threshold=wrapper.score_threshold, iou_threshold=wrapper.iou_threshold,
                         max_detections=wrapper.max_detections, category_ids=list(task.cfg.category_ids))


def unpad(outputs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Padded detector outputs → per image ``{"boxes", "scores", "labels"}`` like ``DetectionTask.detect``."""
    num, boxes, scores, labels = outputs
    return [{"boxes": boxes[i, :n], "scores": scores[i, :n], "labels": labels[i, :n]} for i, n in enumerate(num)]


def compare_detections(reference: list[dict], exported: list[dict]) -> dict:
    """How far the exported graph's detections are from ``reference`` (``DetectionTask.detect``).

    Each exported detection is paired with the reference detection of the same label nearest in box and score, so
    two detections of (nearly) equal score listed in the other order still pair up. ``matched`` is False when the
    counts differ or some detection has no same-label partner.
    """
    box_diff = score_diff = 0.0
    matched = True
    for ref, got in zip(reference, exported):
        ref, got = _numpy(ref), _numpy(got)
        if len(ref["scores"]) != len(got["scores"]):
            matched = False
        for box, score, label in zip(got["boxes"], got["scores"], got["labels"]):
            same = np.flatnonzero(ref["labels"] == label)
            if not same.size:
                matched = False
                continue
            distance = np.maximum(np.abs(ref["boxes"][same] - box).max(1), np.abs(ref["scores"][same] - score))
            best = same[distance.argmin()]
            box_diff = max(box_diff, float(np.abs(ref["boxes"][best] - box).max()))
            score_diff = max(score_diff, float(abs(ref["scores"][best] - score)))
    counts = [(len(r["scores"]), len(g["scores"])) for r, g in zip(reference, exported)]
    return {"matched": matched, "counts": counts, "max_box_diff": box_diff, "max_score_diff": score_diff}


def _numpy(detections: dict) -> dict:
    return {k: torch.as_tensor(v).detach().cpu().numpy() for k, v in detections.items()}


def verify_detector_onnx(task, path: str | Path, images: torch.Tensor, score_threshold: float | None = None,
                         iou_threshold: float = 0.5, max_detections: int | None = None) -> dict:
    """Run the file in onnxruntime and ``DetectionTask.detect``'s post-processing in PyTorch on ``images``, with the
    settings the file was exported with: ``compare_detections`` of the two, and under ``"jitter"`` the worst of the
    same comparison of PyTorch with itself after ``JITTER`` relative noise on the network's outputs.

    The jitter says how far float rounding alone moves this checkpoint's detections. A trained detector's scores are
    far apart and the noise changes nothing; an undertrained one scores every anchor near the 0.01 prior, equal to
    1e-8, so rounding decides which box NMS keeps and no runtime can reproduce PyTorch's detections exactly.
    """
    with torch.no_grad():
        cls, box = task(images)

    def detect(cls, box):
        return postprocess(cls, box, task.anchors.boxes, tuple(images.shape[-2:]),
                           score_threshold=task.cfg.score_threshold if score_threshold is None else score_threshold,
                           iou_threshold=iou_threshold,
                           max_detections=task.cfg.max_detections if max_detections is None else max_detections)

    reference = detect(cls, box)
    result = compare_detections(reference, unpad(run_onnx(path, images)))
    noise = torch.Generator().manual_seed(0)

    def jitter(t):
        return t * (1 + JITTER * torch.randn(t.shape, generator=noise))

    trials = [compare_detections(reference, detect(jitter(cls), jitter(box))) for _ in range(JITTER_TRIALS)]
    result["jitter"] = {"matched": all(t["matched"] for t in trials),
                        "max_box_diff": max(t["max_box_diff"] for t in trials),
                        "max_score_diff": max(t["max_score_diff"] for t in trials)}
    return result


def check_onnx(task, path: Path, args, make_images) -> bool:
    """onnxruntime against PyTorch on ``make_images((H, W))``, printed; True when they agree."""
    images = make_images(tuple(task.cfg.image_size))
    diff = verify_detector_onnx(task, path, images, score_threshold=args.score_threshold,
                                max_detections=args.max_detections)
    counts = ", ".join(f"{ours}/{theirs}" for ours, theirs in diff["counts"])
    print(f"onnxruntime vs PyTorch on {len(images)} synthetic images: detections {counts} (PyTorch/ONNX), "
          f"max |Δbox| {diff['max_box_diff']:.2e} px, max |Δscore| {diff['max_score_diff']:.2e}"
          + ("" if diff["matched"] else "; the detections differ"))
    box_tolerance = BOX_TOLERANCE * max(images.shape[-2:])
    if detections_agree(diff, box_tolerance):
        return True
    jitter = diff["jitter"]
    if detections_agree(jitter, box_tolerance):
        return False
    print(f"  PyTorch against itself with {JITTER:g} relative noise on the network outputs: max |Δbox| "
          f"{jitter['max_box_diff']:.2e} px, max |Δscore| {jitter['max_score_diff']:.2e}. This checkpoint's scores "
          "tie within float rounding (undertrained?), so rounding picks the boxes NMS keeps: no sign of a faulty "
          "export, and all this check can tell")
    return True


def detections_agree(diff: dict, box_tolerance: float) -> bool:
    return diff["matched"] and diff["max_box_diff"] <= box_tolerance and diff["max_score_diff"] <= SCORE_TOLERANCE


class OnnxDetector:
    """A detector's ONNX file in onnxruntime, used as ``predict detect`` uses the trained task: ``detect(images,
    score_threshold)`` → per image boxes, scores, labels (the graph keeps scores above the threshold frozen into it;
    a higher one is applied here, a lower one cannot be)."""

    def __init__(self, runner):
        self.runner, self.device = runner, torch.device("cpu")
        meta = runner.metadata
        self.frozen_threshold = float(meta["score_threshold"])
        self.cfg = SimpleNamespace(class_names=list(meta["class_names"]), image_size=list(meta["input_size"]),
                                   category_ids=list(meta.get("category_ids") or []))

    def detect(self, images: torch.Tensor, score_threshold: float | None = None) -> list[dict]:
        threshold = self.frozen_threshold if score_threshold is None else score_threshold
        if threshold < self.frozen_threshold:
            raise ConfigError(f"{self.runner.path} keeps detections scored above {self.frozen_threshold:g} only: give "
                              f"--score-threshold {self.frozen_threshold:g} or more, or export with a lower one")
        detections = []
        for det in unpad(self.runner(images)):
            keep = det["scores"] > threshold  # as DetectionTask.detect drops scores at or below it
            detections.append({"boxes": torch.from_numpy(det["boxes"][keep]),
                               "scores": torch.from_numpy(det["scores"][keep]),
                               "labels": torch.from_numpy(det["labels"][keep]).long()})
        return detections
