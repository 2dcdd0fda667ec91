"""explain classify: CAM files from the CLI and Python, maps from every method, the default layer of every
registered classifier (the deepest whose measured map is at least 7×7), the figure (the image readable under the map,
a colour bar, the level and its map size in the title), and the errors (wrong layer, another task's checkpoint, a
missing or corrupt image)."""
import numpy as np
import pytest
import torch
from PIL import Image

from backbonekit.classification.explain import class_maps
from backbonekit.cli import main
from backbonekit.errors import ConfigError
from backbonekit.explain import METHODS
from backbonekit.tasks import explain
from backbonekit.explain.cam import cam_maps
from backbonekit.explain.layers import MIN_MAP_SIDE, default_level, find_layer, level_labels, map_size
from backbonekit.explain.overlay import heat_overlay, luminance
from backbonekit.models.registry import create_model, list_models
from backbonekit.tasks import load_trained
from figure_checks import cut_off


def _images(folder):
    return sorted(p for p in folder.rglob("*.png"))[:2]


def test_the_command_writes_a_strip_per_image_and_the_feature_maps(tiny_runs, tmp_path, capsys):
    images = _images(tiny_runs["data"]["classify"])
    code = main(["explain", "classify", "--checkpoint", str(tiny_runs["classify"] / "best.ckpt"), *map(str, images),
                 "--out", str(tmp_path), "--feature-maps", "4", "--method", "gradcam++"])
    assert code == 0
    written = capsys.readouterr().out.split()
    assert sorted(written) == sorted(str(tmp_path / f"{p.stem}{s}") for p in images
                                     for s in ("_cam.png", "_features.png"))
    for path in written:
        with Image.open(path) as picture:
            assert picture.width > 300 and picture.height > 150


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_one_map_in_0_1_per_image(tiny_runs, method):
    _, trained = load_trained(tiny_runs["classify"] / "best.ckpt")
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    maps = class_maps(trained, images, [0, 1], method)
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32
    assert 0 <= maps.min() and maps.max() <= 1 + 1e-6


def test_python_explain_names_the_files(tiny_runs, tmp_path):
    image = _images(tiny_runs["data"]["classify"])[0]
    files = explain(tiny_runs["classify"] / "best.ckpt", [image], out=tmp_path, top_k=2)
    assert [f.name for f in files] == [f"{image.stem}_cam.png"] and files[0].is_file()


def test_a_wrong_layer_lists_the_levels(tiny_runs, tmp_path, capsys):
    image = _images(tiny_runs["data"]["classify"])[0]
    code = main(["explain", "classify", "--checkpoint", str(tiny_runs["classify"] / "best.ckpt"), str(image),
                 "--layer", "layer9", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--layer layer9: no such layer" in err and "layer1, layer2, layer3, layer4" in err


@pytest.mark.parametrize("name", list_models(task="classify"))
def test_every_classifier_has_a_default_layer(name):
    with torch.device("meta"):  # no weights: only the module tree and feature_info are needed
        model = create_model(name, num_classes=3)
    found, module = find_layer(model, None, 224)
    assert found == default_level(model, 224) and isinstance(module, torch.nn.Module)
    last_levels = [info["module"].split(",")[-1] for info in model.feature_info]
    assert found in last_levels[-2:], (found, last_levels)  # 224² leaves room for the deepest or the one before


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0", "densenet121", "googlenet", "alexnet"])
def test_the_default_layer_gives_a_map_that_shows_where(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    _, layer = find_layer(model, None, 96)
    x = torch.zeros(1, 3, 96, 96)
    x[..., 10:40, 50:90] = 2.0  # one bright patch: the only thing there is to look at
    heat = cam_maps(model, layer, x, None, "eigencam")[0]
    assert heat.max() - heat.min() > 0.5, name  # not flat


@pytest.mark.parametrize("name, size", [("resnet18", 96), ("resnet18", 64), ("resnet18", 224), ("alexnet", 64),
                                        ("alexnet", 224), ("efficientnet_lite0", 96), ("densenet121", 96)])
def test_the_default_level_is_the_deepest_whose_map_is_at_least_7x7(name, size):
    # benchmarks/explain_classify_localisation.py: ResNet-18's 3×3 layer4 at 96² put the CAM peak in the object's
    # box 35.5% of the time, its 6×6 layer3 87.0%, its 12×12 layer2 93.5%. AlexNet's stride-16 level is nominally
    # 8×8 at 64² but 7×7 in fact (unpadded convs and pools), its stride-32 one 1×1: measured, not read off.
    with torch.device("meta"):
        model = create_model(name, num_classes=3).eval()
    chosen = level_labels(model).index(default_level(model, size))
    sides = []
    for label in level_labels(model):
        dict(model.named_modules())[label].register_forward_hook(lambda m, i, o: sides.append(min(o.shape[-2:])))
    model(torch.zeros(1, 3, size, size, device="meta"))
    assert MIN_MAP_SIDE == 7 and sides[chosen] >= MIN_MAP_SIDE, (sides, chosen)
    assert all(side < MIN_MAP_SIDE for side in sides[chosen + 1:]), (sides, chosen)


def _digit_strokes(index: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    digit = (load_digits().images[index] * 255 / 16).astype(np.uint8)
    return np.repeat(np.asarray(Image.fromarray(digit).resize((32, 32), Image.BILINEAR))[..., None], 3, -1)


def test_an_overlay_keeps_the_image_readable_under_any_map():
    # The old blend (the image at 0.5 under jet) let jet's own brightness swamp a digit: its luminance correlated
    # with the digit's as little as 0.64 (digit 0) over 50 random 3×3 maps; 0.80 now.
    rng = np.random.default_rng(0)
    for index in (0, 9, 42):
        digit = _digit_strokes(index)
        for _ in range(20):
            shown = heat_overlay(digit, rng.random((3, 3)))
            assert np.corrcoef(luminance(shown).ravel(), luminance(digit).ravel())[0, 1] > 0.75


def test_an_overlays_colours_are_the_maps_alone():
    # The image goes in grey: a red and a green pixel of one brightness look the same, so every hue reads on the
    # colour bar's scale.
    heat = np.random.default_rng(0).random((3, 3))
    red, green = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 0], green[..., 1] = 200, round(200 * 0.299 / 0.587)
    diff = heat_overlay(red, heat).astype(int) - heat_overlay(green, heat).astype(int)
    assert np.abs(diff).max() <= 1


def test_the_cam_figure_names_its_level_and_size_and_has_a_colour_bar(tiny_runs, tmp_path, monkeypatch):
    from backbonekit.explain import overlay

    figures = []

    def keep(fig, path):
        figures.append(fig)
        assert not cut_off(fig)  # the colour bar's label included (checked while the figure is still open)
        return save_figure(fig, path)

    save_figure = overlay.save_figure
    monkeypatch.setattr(overlay, "save_figure", keep)
    image = tmp_path / "digit.png"
    Image.fromarray(_digit_strokes(0)).resize((16, 16)).save(image)
    explain(tiny_runs["classify"] / "best.ckpt", [image], out=tmp_path / "out", top_k=2)
    (fig,) = figures
    _, trained = load_trained(tiny_runs["classify"] / "best.ckpt")
    level = default_level(trained.model, 16)
    h, w = map_size(trained.model, dict(trained.model.named_modules())[level], 16)
    assert f"gradcam at {level} ({h}×{w})" in fig._suptitle.get_text() and h >= MIN_MAP_SIDE
    (bar,) = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert bar.get_ylim() == (0, 1) and bar.get_ylabel()
    picture, *overlays = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(overlays) == 2
    for shown in overlays:  # the digit still shows through a real map (the bound for any map: the test above)
        assert np.corrcoef(luminance(shown).ravel(), luminance(picture).ravel())[0, 1] > 0.5


def _cli(tiny_runs, tmp_path, *args):
    return main(["explain", "classify", "--checkpoint", str(tiny_runs["classify"] / "best.ckpt"),
                 "--out", str(tmp_path / "out"), *map(str, args)])


def test_a_detect_checkpoint_is_refused_in_one_line(tiny_runs, tmp_path, capsys):
    image = _images(tiny_runs["data"]["classify"])[0]
    code = main(["explain", "classify", "--checkpoint", str(tiny_runs["detect"] / "best.ckpt"), str(image),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "a detect checkpoint, not classify" in err and "backbonekit explain detect" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="a detect checkpoint, not classify"):
        explain(tiny_runs["detect"] / "best.ckpt", [image], task="classify", out=tmp_path / "out")


def test_a_missing_image_is_named(tiny_runs, tmp_path, capsys):
    image = _images(tiny_runs["data"]["classify"])[0]
    code = _cli(tiny_runs, tmp_path, image, tmp_path / "nope.png")
    err = capsys.readouterr().err
    assert code == 2 and "nope.png: no such file or folder" in err


def test_a_corrupt_image_is_named_or_skipped(tiny_runs, tmp_path, capsys):
    image = _images(tiny_runs["data"]["classify"])[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert _cli(tiny_runs, tmp_path, bad, image) == 2
    err = capsys.readouterr().err
    assert "bad.png: cannot read image" in err and "--skip-bad-images" in err
    assert _cli(tiny_runs, tmp_path, bad, image, "--skip-bad-images") == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(tmp_path / "out" / f"{image.stem}_cam.png")] and "bad.png" in err


def test_files_are_named_as_written_so_a_bad_image_later_keeps_the_earlier_ones(tiny_runs, tmp_path, capsys):
    good = _images(tiny_runs["data"]["classify"])[0]
    bad = tmp_path / "zz_broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code = main(["explain", "classify", "--checkpoint", str(tiny_runs["classify"] / "best.ckpt"), str(good), str(bad),
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2 and "zz_broken.png" in captured.err
    assert captured.out.split() == [str(tmp_path / "out" / f"{good.stem}_cam.png")]


def test_a_frozen_model_gives_a_map_and_stays_frozen():
    model = create_model("resnet18", num_classes=3).eval().requires_grad_(False)
    _, layer = find_layer(model, "layer3")
    heat = cam_maps(model, layer, torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), None)
    assert heat.max() - heat.min() > 0.1
    assert not any(p.requires_grad for p in model.parameters())
