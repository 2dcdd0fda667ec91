"""Parameter and state-dict entry counts equal the reference implementations' (torchvision, timm, efficientnet_pytorch)."""
import pytest
import torch

import backbonekit as bk

COUNTS = {
    "resnet18": (11_689_512, 122), "resnet34": (21_797_672, 218), "resnet50": (25_557_032, 320),
    "resnet101": (44_549_160, 626), "resnet152": (60_192_808, 932),
    "efficientnet_b0": (5_288_548, 360), "efficientnet_b1": (7_794_184, 508), "efficientnet_b2": (9_109_994, 508),
    "efficientnet_b3": (12_233_232, 574), "efficientnet_b4": (19_341_616, 706), "efficientnet_b5": (30_389_784, 854),
    "efficientnet_b6": (43_040_704, 986), "efficientnet_b7": (66_347_960, 1200),
}


@pytest.mark.parametrize("name", COUNTS)
def test_param_count(name):
    params, entries = COUNTS[name]
    model = bk.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == entries
    tf_name = "tf_" + name
    if tf_name in bk.list_models():
        assert sum(p.numel() for p in bk.create_model(tf_name).parameters()) == params


@pytest.mark.parametrize("variant,stem,channels,repeats,head", [
    ("b0", 32, [16, 24, 40, 80, 112, 192, 320], [1, 2, 2, 3, 3, 4, 1], 1280),
    ("b3", 40, [24, 32, 48, 96, 136, 232, 384], [2, 3, 3, 5, 5, 6, 2], 1536),
    ("b4", 48, [24, 32, 56, 112, 160, 272, 448], [2, 4, 4, 6, 6, 8, 2], 1792),
    ("b7", 64, [32, 48, 80, 160, 224, 384, 640], [4, 7, 7, 10, 10, 13, 4], 2560),
])
def test_compound_scaling_derives_the_published_layers(variant, stem, channels, repeats, head):
    model = bk.create_model(f"efficientnet_{variant}")
    assert model.stem.conv.out_channels == stem
    assert [info["num_chs"] for info in model.feature_info[:7]] == channels
    assert [len(stage) for stage in model.stages] == repeats
    assert model.num_features == head


def test_stochastic_depth_schedule_b0():
    model = bk.create_model("efficientnet_b0")
    blocks = [b for stage in model.stages for b in stage]
    # 0.2·i/N over all 16 blocks, present only where the residual is used.
    for i, block in enumerate(blocks):
        if block.use_residual:
            assert block.drop_path.p == pytest.approx(0.2 * i / 16)
        else:
            assert block.drop_path is None
    # The schedule runs to 0.2·15/16 = 0.1875 at the last block, which has no residual; the deepest used is 14/16.
    assert max(b.drop_path.p for b in blocks if b.drop_path is not None) == pytest.approx(0.175)


def test_default_resolution_and_dropout():
    assert bk.create_model("efficientnet_b4").pretrained_cfg["input_size"] == (3, 380, 380)
    assert bk.create_model("efficientnet_b7").head_drop.p == 0.5


def test_list_models_and_unknown_name():
    assert set(bk.list_models("resnet*")) >= {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    assert len(bk.list_models("*efficientnet_b?")) == 16
    with pytest.raises(bk.errors.ConfigError, match="resnet50"):
        bk.create_model("resnet5O")


def test_resnet_stochastic_depth_is_optional_and_keeps_the_weights_layout():
    model = bk.create_model("resnet50", drop_path_rate=0.1)
    rates = [b.drop_path.p for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer
             if not isinstance(b.drop_path, torch.nn.Identity)]
    assert len(rates) == 15 and rates[-1] == pytest.approx(0.1)  # the first block's rate is 0: no module
    assert len(model.state_dict()) == 320
