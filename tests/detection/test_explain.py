"""explain detect: each box's map comes from that box's own logit, one panel per box, and the errors."""
import numpy as np
import pytest
import torch

import backbonekit.detection.explain as detect_explain
from backbonekit.cli import main
from backbonekit.detection.explain import BoxLogits, box_maps, detect_with_anchors
from backbonekit.errors import ConfigError
from backbonekit.tasks import load_trained


@pytest.fixture(scope="module")
def detector(tiny_runs):
    _, trained = load_trained(tiny_runs["detect"] / "best.ckpt")
    return trained.eval()


def _image():
    return torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_the_anchor_of_each_box_holds_the_logit_of_its_score(detector):
    image = _image()
    found = detect_with_anchors(detector, image, score_threshold=0.0, max_boxes=20)
    assert len(found["scores"]) == 20
    assert torch.equal(found["boxes"], detector.detect(image[None], score_threshold=0.0)[0]["boxes"][:20])
    with torch.no_grad():
        logits = BoxLogits(detector, found["anchors"], found["labels"])(image[None].float() / 255)[0]
    torch.testing.assert_close(logits.sigmoid(), found["scores"], rtol=1e-5, atol=1e-6)


def test_one_map_per_box_each_its_own_and_not_flat(detector):
    image = _image()
    found = detect_with_anchors(detector, image, score_threshold=0.0, max_boxes=3)
    maps = box_maps(detector, image, found, "gradcam")
    assert maps.shape == (3, 64, 64) and 0 <= maps.min() and maps.max() <= 1 + 1e-6
    assert all(heat.max() - heat.min() > 0.5 for heat in maps), [(h.min(), h.max()) for h in maps]
    assert not np.allclose(maps[0], maps[1]) or not np.allclose(maps[1], maps[2])


def test_a_layer_that_gives_no_single_map_is_refused(detector):
    image = _image()
    found = detect_with_anchors(detector, image, score_threshold=0.0, max_boxes=1)
    # A head conv runs once per pyramid level; grad-cam keeps P3's pass only (a P4–P7 box's map was blank).
    with pytest.raises(ConfigError, match=r"class_net.convs.0: runs 5 times a forward"):
        box_maps(detector, image, found, "gradcam", "class_net.convs.0")
    with pytest.raises(ConfigError, match=r"fpn.cells.0: returns a list, not one map"):
        box_maps(detector, image, found, "gradcam", "fpn.cells.0")
    assert box_maps(detector, image, found, "gradcam", "fpn.cells.2.nodes.3").shape == (1, 64, 64)


def test_the_command_draws_one_panel_per_box_and_names_a_wrong_layer(tiny_runs, tmp_path, capsys, monkeypatch):
    panels = []

    def recording(shown, path, *args, **kwargs):
        panels.append([caption for _, caption in shown])
        return save_panels(shown, path, *args, **kwargs)

    save_panels = detect_explain.save_panels
    monkeypatch.setattr(detect_explain, "save_panels", recording)
    image = sorted((tiny_runs["data"]["detect"] / "images").glob("*.png"))[0]
    checkpoint = str(tiny_runs["detect"] / "best.ckpt")
    assert main(["explain", "detect", "--checkpoint", checkpoint, str(image), "--out", str(tmp_path),
                 "--score-threshold", "0.0", "--max-boxes", "2", "--feature-maps", "3"]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / f"{image.stem}{s}") for s in ("_boxes.png", "_features.png")]
    assert all(open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for path in written)
    (captions,) = panels
    assert len(captions) == 1 + 2 and captions[0].endswith("2 box(es) ≥ 0")
    assert all(caption.split()[0] in ("rectangle", "circle", "triangle") and 0 < float(caption.split()[1]) < 1
               for caption in captions[1:]), captions

    code = main(["explain", "detect", "--checkpoint", checkpoint, str(image), "--layer", "stages.2",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "backbone.body.stages.2" in err and "backbone.body.stem" in err


def test_a_classify_checkpoint_is_refused_in_one_line(tiny_runs, tmp_path, capsys):
    image = sorted((tiny_runs["data"]["detect"] / "images").glob("*.png"))[0]
    code = main(["explain", "detect", "--checkpoint", str(tiny_runs["classify"] / "best.ckpt"), str(image),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "a classify checkpoint, not detect" in err and "backbonekit explain classify" in err
    assert not (tmp_path / "out").exists()
