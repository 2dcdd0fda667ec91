"""Does `explain detect` show what drove each box? A small EfficientDet-D0 is trained from scratch on the synthetic
shapes set (``data synth shapes --format coco``), then explained on its held-out split as `explain detect` does it
(the letterboxed image, each kept box's own logit, the default layer): for every detection that matches a true box
(same class, IoU ≥ 0.5), the share of its map's mass that lies inside its (detected) box. Chance is the box's share
of the image: the mass inside it of a map spread evenly.

Also printed: the share of boxes whose mass inside beats their chance, and how alike the maps of two boxes of one
image are (EigenCAM takes no target, so all boxes of an image get the same map: the figure that says so).

Run:  .venv/bin/python benchmarks/explain_detect_box_mass.py [--epochs 24] [--num-images 300] [--image-size 128]
          [--methods gradcam …] [--layer NAME] [--out runs/explain-detect]
          [--checkpoint RUN/best.ckpt (skip training)]
"""
import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from backbonekit.cli import main as cli

SCORE_THRESHOLD = 0.3  # explain detect's default
MAX_BOXES = 8
MATCH_IOU = 0.5


def train(args) -> Path:
    data = Path(args.out) / "data"
    if not (data / "annotations.json").exists():
        cli(["data", "synth", "shapes", "--format", "coco", "--out", str(data), "--num-images", str(args.num_images),
             "--seed", "0"])
    # train_detect_synth.py's "scratch" configuration (GroupNorm, no weights fetched), fewer epochs for a shared CPU.
    start = time.time()
    code = cli(["train", "detect", "--data", str(data), "--image-size", str(args.image_size), "--epochs",
                str(args.epochs), "--batch-size", "8", "--lr", "2e-3", "--scale-min", "0.75", "--scale-max", "1.25",
                "--progress", "lines", "--out", args.out, "--name", "scratch", "--exist-ok", "--seed", "0"])
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}")
    run = Path(args.out) / "detect" / "scratch"
    coco = json.loads((run / "metrics.json").read_text())["best_checkpoint_val"]["coco"]
    print(f"trained in {time.time() - start:.0f} s; best held-out mAP@.5 {coco['mAP50']:.1f}%, "
          f"mAP {coco['mAP']:.1f}%", flush=True)
    return run / "best.ckpt"


def matched(found: dict, truth: dict) -> list[int]:
    """Indices of the detections that hit a true box of their class (each true box taken by its best-scoring
    detection only, as in AP)."""
    if len(found["boxes"]) == 0 or len(truth["boxes"]) == 0:
        return []
    iou = box_iou(found["boxes"], truth["boxes"].as_subclass(torch.Tensor))
    iou[found["labels"][:, None] != truth["labels"][None, :]] = 0
    taken, hits = set(), []
    for i in range(len(found["boxes"])):  # sorted by score
        j = int(iou[i].argmax())
        if iou[i, j] >= MATCH_IOU and j not in taken:
            taken.add(j)
            hits.append(i)
    return hits


def mass_inside(heat: np.ndarray, box: torch.Tensor) -> tuple[float, float]:
    """(the share of ``heat``'s mass inside ``box``, the box's share of the image), counting whole pixels whose
    centre lies in the box."""
    h, w = heat.shape
    x0, y0, x1, y1 = box.tolist()
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    inside = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    total = float(heat.sum())
    share = float(heat[inside].sum()) / total if total > 0 else float(inside.mean())
    return share, float(inside.mean())


def evaluate(checkpoint: Path, data: Path, methods: list[str], layer: str | None = None) -> None:
    from backbonekit.detection.data import build_detection_data
    from backbonekit.detection.explain import box_maps, detect_with_anchors, detector_layer
    from backbonekit.tasks import load_trained

    _, trained = load_trained(checkpoint)
    trained.eval()
    size = tuple(trained.cfg.image_size)
    held_out = build_detection_data(data, size, augment=False).val
    layer, _ = detector_layer(trained, layer)
    shares, chances, alike = defaultdict(list), [], defaultdict(list)
    detections = boxes_true = 0
    seconds = defaultdict(float)
    for index in range(len(held_out)):
        image, truth = held_out[index]
        x = image.as_subclass(torch.Tensor)
        found = detect_with_anchors(trained, x, SCORE_THRESHOLD, MAX_BOXES)
        hits = matched(found, truth)
        detections, boxes_true = detections + len(found["boxes"]), boxes_true + len(truth["boxes"])
        if not hits:
            continue
        chosen = {k: v[hits] for k, v in found.items()}
        chances.extend(mass_inside(np.ones(size, np.float32), box)[1] for box in chosen["boxes"])
        for method in methods:
            start = time.time()
            maps = box_maps(trained, x, chosen, method, layer)
            seconds[method] += time.time() - start
            shares[method].extend(mass_inside(heat, box)[0] for heat, box in zip(maps, chosen["boxes"]))
            alike[method].extend(_correlation(maps[a], maps[b]) for a in range(len(maps)) for b in range(a))
    report(shares, np.array(chances), alike, seconds, layer, len(held_out), detections, boxes_true)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def report(shares, chances, alike, seconds, layer, images, detections, boxes_true) -> None:
    n = len(chances)
    print(f"\n{images} held-out images, {boxes_true} true boxes, {detections} detections ≥ {SCORE_THRESHOLD} "
          f"(≤ {MAX_BOXES} an image), {n} matched (IoU ≥ {MATCH_IOU}, same class); layer {layer}")
    if not n:
        print("no matched detection: nothing to measure")
        return
    print(f"chance (box area share of the image): mean {100 * chances.mean():.1f}%, median "
          f"{100 * np.median(chances):.1f}%")
    print(f"{'method':<11}{'mass in box mean':>17}{'median':>8}{'beats chance':>14}{'map corr. 2 boxes':>19}{'s':>7}")
    for method, values in shares.items():
        v = np.array(values)
        corr = f"{np.mean(alike[method]):.2f}" if alike[method] else "—"
        print(f"{method:<11}{100 * v.mean():>16.1f}%{100 * np.median(v):>7.1f}%{100 * (v > chances).mean():>13.1f}%"
              f"{corr:>19}{seconds[method]:>7.1f}")


def main() -> None:
    from backbonekit.explain import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--layer", help="explain at this module instead of the default (e.g. fpn.cells.2.nodes.3, "
                                        "the BiFPN's last P3 node)")
    parser.add_argument("--out", default="runs/explain-detect")
    parser.add_argument("--checkpoint", help="a trained run's best.ckpt on --out's data: evaluate only")
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(args)
    evaluate(checkpoint, Path(args.out) / "data", args.methods, args.layer)


if __name__ == "__main__":
    main()
