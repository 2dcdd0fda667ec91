import torch
from torchvision import tv_tensors

from backbonekit.detection.kitti import KittiDetection
from backbonekit.detection.transforms import DetectionTransform, eval_transforms, train_transforms, unletterbox_boxes
from torchvision.transforms import v2


def _sample(size=(375, 1242)):
    image = tv_tensors.Image(torch.randint(0, 255, (3, *size), dtype=torch.uint8))
    box = lambda data: tv_tensors.BoundingBoxes(torch.tensor(data, dtype=torch.float32).reshape(-1, 4),  # noqa: E731
                                                format="XYXY", canvas_size=size)
    target = {"boxes": box([[100, 100, 300, 200], [1100, 300, 1242, 375]]), "labels": torch.tensor([0, 2]),
              "ignore_boxes": box([[500, 150, 600, 190]]), "truncated": torch.tensor([0.0, 0.5]),
              "occluded": torch.tensor([0, 1]), "height": torch.tensor([100.0, 75.0]), "image_id": "000007"}
    return image, target


def test_letterbox_to_a_wide_input_maps_boxes_back():
    image, target = _sample()
    out, t = eval_transforms((384, 1280))(image, target)
    assert out.shape == (3, 384, 1280) and out.dtype == torch.uint8
    # 1242×375 × (1280/1242) → 1280×386 would be too tall: the height limits the scale (384/375), width 1272.
    assert out[:, :, 1272:].eq(0).all() and not out[:, :, :1272].eq(0).all()
    assert torch.allclose(t["letterbox"][:2], torch.tensor([1272 / 1242, 384 / 375]))
    assert torch.allclose(unletterbox_boxes(t["boxes"], t["letterbox"]), target["boxes"], atol=1e-3)
    assert torch.allclose(unletterbox_boxes(t["ignore_boxes"], t["letterbox"]), target["ignore_boxes"], atol=1e-3)
    assert t["labels"].tolist() == [0, 2] and t["image_id"] == "000007" and t["truncated"].tolist() == [0.0, 0.5]


def test_flip_moves_boxes_and_ignore_boxes():
    image, target = _sample()
    out, t = DetectionTransform([v2.RandomHorizontalFlip(1.0)])(image, target)
    assert torch.equal(out, image.flip(-1))
    assert t["boxes"].tolist() == [[942, 100, 1142, 200], [0, 300, 142, 375]]
    assert t["ignore_boxes"].tolist() == [[642, 150, 742, 190]]


def test_sanitize_drops_boxes_with_their_extras():
    image, target = _sample()
    out, t = DetectionTransform([v2.CenterCrop((200, 400))])(image, target)
    # The centre 400×200 crop (x 421…821, y 88…288) keeps only the ignore box; both objects fall outside.
    assert out.shape == (3, 200, 400)
    assert t["labels"].tolist() == [] and t["truncated"].shape == (0,) and t["occluded"].shape == (0,)
    assert t["ignore_boxes"].tolist() == [[79, 62, 179, 102]]


def test_train_transforms_keep_targets_valid():
    torch.manual_seed(0)
    transform = train_transforms((128, 384))
    for _ in range(4):
        image, target = _sample()
        out, t = transform(image, target)
        assert out.shape == (3, 128, 384)
        for key in ("boxes", "ignore_boxes"):
            b = t[key]
            assert isinstance(b, tv_tensors.BoundingBoxes) and b.canvas_size == (128, 384)
            assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
            assert (b[:, 0::2] >= 0).all() and (b[:, 0::2] <= 384).all() and (b[:, 1::2] <= 128).all()
        assert len(t["labels"]) == len(t["boxes"]) == len(t["truncated"]) == len(t["height"])
        assert (t["labels"] >= 0).all()


def test_dataset_applies_transforms(kitti_root):
    ds = KittiDetection(kitti_root, transforms=eval_transforms((384, 1280)))
    image, target = ds[0]
    assert image.shape == (3, 384, 1280) and len(target["boxes"]) == 2 and len(target["ignore_boxes"]) == 2
    image, target = ds[1]  # no objects
    assert target["boxes"].shape == (0, 4) and target["ignore_boxes"].shape == (0, 4)


def test_collate_stacks_images_and_lists_targets(kitti_root):
    from backbonekit.detection.transforms import collate
    from torch.utils.data import DataLoader

    ds = KittiDetection(kitti_root, transforms=eval_transforms((96, 320)))
    images, targets = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate)))
    assert images.shape == (3, 3, 96, 320) and [len(t["boxes"]) for t in targets] == [2, 0, 1]


def test_detections_are_mapped_back_clipped_to_the_image_and_emptied_ones_dropped():
    """Boxes anywhere on the letterboxed input, padding included → inside the original image with a positive area;
    those wholly in the padding are gone, with their scores and labels."""
    from backbonekit.detection.transforms import content_size, unletterbox_detections

    generator = torch.Generator().manual_seed(0)
    for size in [(128, 384), (384, 128), (375, 1242)]:  # wide, tall, KITTI
        image, _ = _sample(size)
        empty = {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=size),
                 "labels": torch.zeros(0, dtype=torch.long)}
        _, t = eval_transforms((64, 96))(image, empty)
        corners = torch.rand(200, 2, 2, generator=generator) * torch.tensor([96.0, 64.0])
        boxes = torch.cat([corners.amin(1), corners.amax(1)], 1)
        det = {"boxes": boxes, "scores": torch.rand(200, generator=generator), "labels": torch.arange(200)}
        out = unletterbox_detections(det, t["letterbox"])
        h, w = size
        b = out["boxes"]
        assert (b >= 0).all() and (b[:, 0::2] <= w).all() and (b[:, 1::2] <= h).all()
        assert ((b[:, 2:] - b[:, :2]) > 0).all()
        ch, cw = content_size(t["letterbox"])
        in_padding = (boxes[:, 0] >= cw) | (boxes[:, 1] >= ch)
        assert in_padding.any() and out["labels"].tolist() == torch.arange(200)[~in_padding].tolist()
        assert torch.equal(out["scores"], det["scores"][~in_padding])
