"""Box-aware augmentation and letterboxing with torchvision.transforms.v2.

Every transform here takes and returns ``(image, target)`` as the data sets produce them. torchvision moves one
``BoundingBoxes`` per sample along with the image, but a target has two (``boxes`` and ``ignore_boxes``), so the
ignore boxes ride inside ``boxes`` with label -1 while the v2 pipeline runs and are split off again afterwards; in
between, ``SanitizeBoundingBoxes`` drops boxes that geometric ops made degenerate, together with their labels and
per-object extras (KITTI's truncated/occluded/height).

Letterboxing resizes to fit a fixed, possibly non-square, (H, W) — e.g. 384×1280 for KITTI's 1242×375 frames —
keeping the aspect ratio, and pads right and bottom. Evaluation pipelines record ``target["letterbox"]`` =
``[scale_x, scale_y, pad_x, pad_y, width, height]`` (the last two the original image's) so that
``unletterbox_detections`` maps predicted boxes back to original pixels and clips them to the original image: the one
place where every output (``predict``'s PNG, KITTI, COCO files; ``eval``; every runtime) gets its boxes. The network
sees the padding too, and a box there (or across the image's edge into it) would otherwise leave the image.
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import query_size

from backbonekit.detection.postprocess import clip_detections

PER_OBJECT = ("labels", "truncated", "occluded", "height")  # filtered together with the boxes
IGNORE_LABEL = -1


def letterbox_params(image_size: tuple[int, int], size: tuple[int, int]) -> dict:
    """Resized (h, w) fitting ``image_size`` into ``size`` with the aspect ratio kept, and the padding to ``size``."""
    h, w = image_size
    scale = min(size[0] / h, size[1] / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    return {"resized": (new_h, new_w), "padding": [0, 0, size[1] - new_w, size[0] - new_h],  # left, top, right, bottom
            "scale": (new_w / w, new_h / h)}  # per axis: rounding makes them differ slightly


class Letterbox(v2.Transform):
    """Resize to fit (H, W) keeping the aspect ratio, then pad right/bottom with ``fill``."""

    def __init__(self, size: tuple[int, int], fill: int = 0):
        super().__init__()
        self.size = tuple(size)
        self.fill = fill

    def make_params(self, flat_inputs):
        return letterbox_params(query_size(flat_inputs), self.size)

    def transform(self, inpt, params):
        inpt = self._call_kernel(F.resize, inpt, size=list(params["resized"]), antialias=True)
        return self._call_kernel(F.pad, inpt, padding=params["padding"], fill=self.fill)


def unletterbox_boxes(boxes: torch.Tensor, letterbox: torch.Tensor) -> torch.Tensor:
    """Boxes (xyxy) on the letterboxed image → original image pixels, clipped to the original image, given
    ``target["letterbox"]``."""
    scale_x, scale_y, pad_x, pad_y, width, height = letterbox.tolist()
    out = boxes.clone().float()
    out[..., 0::2] = ((out[..., 0::2] - pad_x) / scale_x).clamp(0, width)
    out[..., 1::2] = ((out[..., 1::2] - pad_y) / scale_y).clamp(0, height)
    return out


def unletterbox_detections(detections: dict[str, torch.Tensor], letterbox: torch.Tensor) -> dict[str, torch.Tensor]:
    """One image's detections on the letterboxed input → on the CPU in original image pixels, clipped to the original
    image; a box with no area left there (it lay in the padding) is dropped with its score and label."""
    detections = {k: v.cpu() for k, v in detections.items()}
    detections["boxes"] = unletterbox_boxes(detections["boxes"], letterbox)
    return clip_detections(detections, original_size(letterbox))


def original_size(letterbox: torch.Tensor) -> tuple[int, int]:
    """(H, W) of the original image of a ``target["letterbox"]``."""
    return int(letterbox[5]), int(letterbox[4])


def content_size(letterbox: torch.Tensor) -> tuple[int, int]:
    """(H, W) of the image inside the letterboxed input (the rest is padding), in input pixels."""
    scale_x, scale_y, _, _, width, height = letterbox.tolist()
    return round(height * scale_y), round(width * scale_x)


def _merge_ignore(target: dict) -> dict:
    """Put ``ignore_boxes`` into ``boxes`` (label -1) so that the v2 ops move both."""
    target = dict(target)
    boxes, ignore = target["boxes"], target.pop("ignore_boxes", None)
    if ignore is None:
        return target
    n = len(ignore)
    target["boxes"] = tv_tensors.wrap(torch.cat([boxes, ignore.to(boxes.dtype)]), like=boxes)
    target["labels"] = torch.cat([target["labels"], torch.full((n,), IGNORE_LABEL, dtype=torch.long)])
    for key in PER_OBJECT[1:]:
        if key in target:
            target[key] = torch.cat([target[key], torch.zeros(n, dtype=target[key].dtype)])
    target["_has_ignore"] = True
    return target


def _split_ignore(target: dict) -> dict:
    if not target.pop("_has_ignore", False):
        return target
    is_ignore = target["labels"] == IGNORE_LABEL
    boxes = target["boxes"]
    target["ignore_boxes"] = tv_tensors.wrap(boxes[is_ignore], like=boxes)
    target["boxes"] = tv_tensors.wrap(boxes[~is_ignore], like=boxes)
    for key in PER_OBJECT:
        if key in target:
            target[key] = target[key][~is_ignore]
    return target


def _per_object(sample):
    _, target = sample
    return tuple(target[key] for key in PER_OBJECT if key in target)


class DetectionTransform:
    """Runs a list of v2 transforms on ``(image, target)``, ignore boxes included, then clamps and sanitises boxes.

    With ``record_letterbox=(H, W)`` the target also gets ``letterbox`` for mapping predictions back; that is only
    meaningful when the pipeline is a plain ``Letterbox`` (evaluation).
    """

    def __init__(self, transforms: list, min_size: float = 1.0, record_letterbox: tuple[int, int] | None = None):
        self.pipeline = v2.Compose([*transforms, v2.ClampBoundingBoxes(),
                                    v2.SanitizeBoundingBoxes(min_size=min_size, labels_getter=_per_object)])
        self.record_letterbox = record_letterbox

    def __call__(self, image, target):
        original = tuple(image.shape[-2:])
        image, target = self.pipeline(image, _merge_ignore(target))
        target = _split_ignore(target)
        if self.record_letterbox is not None:
            p = letterbox_params(original, self.record_letterbox)
            target["letterbox"] = torch.tensor([*p["scale"], p["padding"][0], p["padding"][1], original[1],
                                                original[0]], dtype=torch.float32)
        return image, target

    def __repr__(self) -> str:
        return f"DetectionTransform({self.pipeline})"


def train_transforms(size: tuple[int, int], hflip: float = 0.5, scale_range: tuple[float, float] = (0.5, 1.5),
                     colour: float = 0.3, hue: float = 0.0, iou_crop: bool = False,
                     fill: int = 0) -> DetectionTransform:
    """EfficientDet-style training augmentation for a fixed (H, W) input.

    Flip; optionally an SSD-style ``RandomIoUCrop``; random scale (``ScaleJitter`` relative to the size that fits
    (H, W)) followed by a random (H, W) crop, padded where the scaled image is smaller — the "random scale crop" of
    the EfficientDet paper; brightness/contrast/saturation jitter of strength ``colour`` (0 turns it off). Hue
    jitter is off by default: torchvision's goes through HSV and costs more than all the rest on a CPU.
    """
    ops = [v2.RandomHorizontalFlip(hflip)]
    if iou_crop:
        ops.append(v2.RandomIoUCrop())
    ops += [v2.ScaleJitter(target_size=tuple(size), scale_range=scale_range, antialias=True),
            v2.RandomCrop(tuple(size), pad_if_needed=True, fill=fill)]
    if colour > 0:
        ops.append(v2.ColorJitter(brightness=colour, contrast=colour, saturation=colour, hue=hue or None))
    return DetectionTransform(ops)


def eval_transforms(size: tuple[int, int], fill: int = 0) -> DetectionTransform:
    """Letterbox to (H, W), recording how to map boxes back."""
    return DetectionTransform([Letterbox(size, fill)], record_letterbox=tuple(size))


def collate(batch: list[tuple]) -> tuple[torch.Tensor, list[dict]]:
    """DataLoader ``collate_fn``: same-size images stacked (B, 3, H, W), targets kept as a list (box counts vary)."""
    images, targets = zip(*batch)
    return torch.stack([torch.as_tensor(image) for image in images]), list(targets)
