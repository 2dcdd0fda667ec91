"""explain detect: each box's map comes from that box's own logit, one panel per box, and the errors."""
import numpy as np
import torch

from backbonekit.cli import main
from backbonekit.detection.explain import BoxLogits, box_maps, detect_with_anchors
from backbonekit.tasks import load_trained


def _detector_and_image(tiny_runs):
    _, trained = load_trained(tiny_runs["detect"] / "best.ckpt")
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return trained, image


def test_the_anchor_of_each_box_holds_the_logit_of_its_score(tiny_runs):
    trained, image = _detector_and_image(tiny_runs)
    found = detect_with_anchors(trained, image, score_threshold=0.0, max_boxes=20)
    assert len(found["scores"]) == 20
    assert torch.equal(found["boxes"], trained.detect(image[None], score_threshold=0.0)[0]["boxes"][:20])
    with torch.no_grad():
        logits = BoxLogits(trained, found["anchors"], found["labels"])(image[None].float() / 255)[0]
    torch.testing.assert_close(logits.sigmoid(), found["scores"], rtol=1e-5, atol=1e-6)


def test_one_map_per_box_each_its_own(tiny_runs):
    trained, image = _detector_and_image(tiny_runs)
    found = detect_with_anchors(trained, image, score_threshold=0.0, max_boxes=3)
    maps = box_maps(trained, image, found, "gradcam")
    assert maps.shape == (3, 64, 64) and 0 <= maps.min() and maps.max() <= 1 + 1e-6
    assert not np.allclose(maps[0], maps[1]) or not np.allclose(maps[1], maps[2])


def test_the_command_draws_the_boxes_and_names_a_wrong_layer(tiny_runs, tmp_path, capsys):
    image = sorted((tiny_runs["data"]["detect"] / "images").glob("*.png"))[0]
    checkpoint = str(tiny_runs["detect"] / "best.ckpt")
    assert main(["explain", "detect", "--checkpoint", checkpoint, str(image), "--out", str(tmp_path),
                 "--score-threshold", "0.0", "--max-boxes", "2", "--feature-maps", "3"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / f"{image.stem}{s}")
                                               for s in ("_boxes.png", "_features.png")]
    code = main(["explain", "detect", "--checkpoint", checkpoint, str(image), "--layer", "stages.2",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "backbone.body.stages.2" in err and "backbone.body.stem" in err
