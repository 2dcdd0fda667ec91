import contextlib
import io
import json

import numpy as np
import pytest
import torch
from detection.writers import coco_dict

from backbonekit.detection.evaluate_coco import detections_to_coco_results, evaluate_coco
from backbonekit.errors import DataError


def _synthetic(seed=0, n_images=12):
    """Ground truth with gappy category ids, and noisy detections with misses, false positives and a crowd box.
    Coordinates are multiples of 1/4, exact in float32 too, so that tensor-based evaluators see the same boxes."""
    rng = np.random.default_rng(seed)
    q = lambda v: [float(x) for x in np.round(np.asarray(v) * 4) / 4]  # noqa: E731
    gt = {"images": [], "annotations": [], "categories": [{"id": 4, "name": "a"}, {"id": 9, "name": "b"},
                                                          {"id": 11, "name": "c"}]}
    results = []
    for image_id in range(1, n_images + 1):
        gt["images"].append({"id": image_id, "file_name": f"{image_id}.png", "width": 200, "height": 150})
        for _ in range(rng.integers(1, 6)):
            x, y, w, h = q([rng.uniform(0, 120), rng.uniform(0, 90), rng.uniform(4, 80), rng.uniform(4, 60)])
            cat = int(rng.choice([4, 9, 11]))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.1)})
            if rng.random() < 0.8:
                jitter = q(rng.normal(0, 3, 4))
                results.append({"image_id": image_id, "category_id": cat, "score": round(float(rng.random()), 3),
                                "bbox": [x + jitter[0], y + jitter[1], max(1, w + jitter[2]), max(1, h + jitter[3])]})
        for _ in range(rng.integers(0, 3)):
            results.append({"image_id": image_id, "category_id": int(rng.choice([4, 9, 11])),
                            "score": float(rng.random() * 0.5), "bbox": [*q(rng.uniform(0, 150, 2)), 20.0, 20.0]})
    return gt, results


def _pycocotools(gt, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        e = COCOeval(coco, coco.loadRes(json.loads(json.dumps(results))), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def test_agrees_with_cocoeval_from_files(tmp_path):
    gt, results = _synthetic()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    ours = evaluate_coco(tmp_path / "gt.json", tmp_path / "res.json")
    reference = _pycocotools(gt, results)
    assert 0.2 < ours["mAP"] < 0.95
    assert [ours[k] for k in ("mAP", "mAP50", "mAP75")] == pytest.approx(list(reference.stats[:3]), abs=1e-12)
    for k, cat in enumerate((4, 9, 11)):
        p = reference.eval["precision"][:, :, k, 0, -1]
        assert ours["per_class"]["abc"[k]] == pytest.approx(p[p > -1].mean(), abs=1e-12)


def test_agrees_with_torchmetrics():
    from torchmetrics.detection import MeanAveragePrecision

    gt, results = _synthetic(seed=3, n_images=6)
    for a in gt["annotations"]:  # torchmetrics 1.9 scores crowd boxes differently (0.340 vs 0.339 here)
        a["iscrowd"] = 0
    ours = evaluate_coco(gt, results)
    metric = MeanAveragePrecision(box_format="xywh", backend="pycocotools")
    for img in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        dets = [r for r in results if r["image_id"] == img["id"]]
        metric.update([{"boxes": torch.tensor([d["bbox"] for d in dets]).reshape(-1, 4),
                        "scores": torch.tensor([d["score"] for d in dets]),
                        "labels": torch.tensor([d["category_id"] for d in dets], dtype=torch.long)}],
                      [{"boxes": torch.tensor([a["bbox"] for a in anns]).reshape(-1, 4),
                        "labels": torch.tensor([a["category_id"] for a in anns]),
                        "iscrowd": torch.tensor([a["iscrowd"] for a in anns]),
                        "area": torch.tensor([a["area"] for a in anns])}])
    theirs = metric.compute()
    assert ours["mAP"] == pytest.approx(theirs["map"].item(), abs=1e-6)
    assert ours["mAP50"] == pytest.approx(theirs["map_50"].item(), abs=1e-6)


def test_perfect_and_empty_results():
    gt = coco_dict()
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"] if not a.get("iscrowd")]
    out = evaluate_coco(gt, perfect)
    assert out["mAP"] == pytest.approx(1.0)
    assert out["per_class"] == {"car": pytest.approx(1.0), "dog": pytest.approx(1.0)}
    assert evaluate_coco(gt, [])["mAP"] == 0.0


def test_detections_to_results_maps_labels_and_boxes():
    det = {"boxes": torch.tensor([[10.0, 5.0, 30.0, 15.0]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
    assert detections_to_coco_results([det], [7], category_ids=[3, 18]) == [
        {"image_id": 7, "category_id": 18, "bbox": [10.0, 5.0, 20.0, 10.0], "score": 0.5}]


@pytest.mark.parametrize("result, message", [
    ({"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}, r"detection \[0\]: field 'image_id'"),
    ({"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, "field 'category_id' names an unknown"),
    ({"image_id": 7, "category_id": 3, "bbox": [0, 0, 1], "score": 1}, "field 'bbox' must be 4 numbers"),
    ({"image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1]}, "missing field 'score'"),
])
def test_bad_results_are_named(result, message):
    with pytest.raises(DataError, match=message):
        evaluate_coco(coco_dict(), [result])
