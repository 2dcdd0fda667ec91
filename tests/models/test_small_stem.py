"""``stem="small"``: every classifier family keeps a grid to its last level at 28-32 px, its feature_info says the
levels' true strides, the option survives save/load, and ImageNet weights load with the replaced stem fresh."""
import math
import warnings

import pytest
import torch

import backbonekit as bk
from backbonekit.models.registry import load_model
from backbonekit.weights import save_weights

FAMILIES = ["resnet18", "seresnet18", "resnext50_32x4d", "efficientnet_b0", "efficientnet_lite0", "alexnet", "vgg11",
            "googlenet", "densenet121"]


@pytest.mark.parametrize("name", FAMILIES)
def test_levels_match_their_recorded_strides(name):
    model = bk.create_model(name, num_classes=10, stem="small").eval()
    assert model.stem_type == "small"
    for size in (32, 28):
        with torch.no_grad():
            levels = model.forward_levels(torch.zeros(1, 3, size, size))
            assert model.forward_head(levels[-1]).shape == (1, 10)
        for out, info in zip(levels, model.feature_info, strict=True):
            assert out.shape[1] == info["num_chs"]
            # Exact where the stride divides the size; else the floor or ceiling (unpadded or padded pools).
            r = info["reduction"]
            assert out.shape[-1] in (size // r, math.ceil(size / r)), (name, size, info)
        assert levels[-1].shape[-1] >= 1
    # The small stem leaves out the first downsampling(s): every ImageNet stem ends at stride 32.
    assert model.feature_info[-1]["reduction"] <= 16


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0", "googlenet"])
def test_the_stem_survives_save_and_load(tmp_path, name):
    model = bk.create_model(name, num_classes=10, stem="small").eval()
    path = save_weights(model, tmp_path / "m.safetensors")
    loaded = load_model(path).eval()
    assert loaded.stem_type == "small"
    x = torch.rand(1, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x))


@pytest.mark.parametrize("name,stem_key", [("resnet18", "conv1.weight"), ("alexnet", "features.0.weight"),
                                           ("googlenet", "conv1.conv.weight"),
                                           ("densenet121", "features.conv0.weight")])
def test_imagenet_weights_load_with_a_fresh_stem(name, stem_key):
    source = bk.create_model(name, num_classes=10).state_dict()
    model = bk.create_model(name, num_classes=10, stem="small")
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="small stem") as caught:
        bk.load_weights(model, source)
    assert stem_key in str(caught[0].message)
    loaded = model.state_dict()
    for key in model.replaced_stem_keys():
        assert torch.equal(loaded[key], fresh[key])  # kept its own initialisation
    others = [k for k in loaded if k not in model.replaced_stem_keys()]
    assert others and all(torch.equal(loaded[k], source[k]) for k in others)


def test_efficientnet_small_stem_takes_the_whole_imagenet_stem():
    # Its stem is the same 3×3 conv at stride 1: the weights fit and load, with nothing to say.
    source = bk.create_model("efficientnet_lite0", num_classes=10).state_dict()
    model = bk.create_model("efficientnet_lite0", num_classes=10, stem="small")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bk.load_weights(model, source)
    assert torch.equal(model.stem.conv.weight, source["stem.conv.weight"]) and model.stem.conv.stride == (1, 1)


def test_unknown_stem_is_refused():
    with pytest.raises(ValueError, match="stem must be one of imagenet, small"):
        bk.create_model("resnet18", stem="tiny")


def test_seresnet18_is_timms():
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("seresnet18", num_classes=10).eval()
    ours = bk.create_model("seresnet18", num_classes=10).eval()
    bk.load_weights(ours, theirs.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_summary_shows_the_stem(capsys):
    from backbonekit.cli import main

    assert main(["summary", "resnet18", "--stem", "small", "--image-size", "28", "--num-classes", "10",
                 "--json"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert out["stem"] == "small" and out["input_size"] == [3, 28, 28]
    assert main(["summary", "resnet18", "--stem", "small", "--image-size", "28", "--max-rows", "2"]) == 0
    assert "stem small" in capsys.readouterr().out
