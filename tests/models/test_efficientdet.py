"""EfficientDet: effdet's parameter counts and outputs on its weights, configs D0–D7, any backbone, anchor order."""
import math

import pytest
import torch

import backbonekit as bk
from backbonekit.models import efficientdet as ed  # registers efficientdet_d0…d7
from backbonekit.models.anchors import flatten_level_outputs
from backbonekit.models.bifpn import bifpn_nodes
from backbonekit.errors import ConfigError
from parity_helpers import TOL, calibrate_bn

effdet = pytest.importorskip("effdet")


pytestmark = pytest.mark.usefixtures("one_thread")


def count(module):
    return sum(p.numel() for p in module.parameters())


def peer(name="tf_efficientdet_d0", size=(512, 512), **overrides):
    # effdet fixes resampling sizes at build time: one instance per input size (ours adapts at run time).
    config = effdet.get_efficientdet_config(name)
    for key, value in dict(image_size=size, **overrides).items():
        config[key] = value
    return effdet.EfficientDet(config, pretrained_backbone=False)


def calibrated_effdet_weights(name="tf_efficientdet_d0", **overrides):
    model = peer(name, (256, 256), **overrides)
    with torch.no_grad():  # unequal fusion weights, so inputs mapped to the wrong weight would show
        for key, p in model.named_parameters():
            if key.endswith("edge_weights"):
                p.uniform_(0.2, 1.5)
    return calibrate_bn(model, (256, 256)).state_dict()


def assert_same(expected, got):
    for e, o in zip(expected, got, strict=True):
        assert e.shape == o.shape
        # Non-vacuous: outputs depend on the image (two images in the batch).
        assert (e[0] - e[1]).abs().max() > 1e-2
        assert (e - o).abs().max().item() <= TOL


def test_d0_has_effdets_parameters_part_by_part():
    ours, theirs = bk.create_model("efficientdet_d0"), peer()
    assert count(ours) == count(theirs) == 3_880_067
    for part in ("backbone", "fpn", "class_net", "box_net"):
        assert count(getattr(ours, part)) == count(getattr(theirs, part)), part


def test_d1_parameter_count():
    assert count(bk.create_model("efficientdet_d1")) == count(peer("tf_efficientdet_d1", (640, 640))) == 6_625_898


def test_effdet_weights_give_effdets_outputs():
    sd = calibrated_effdet_weights()
    ours = bk.create_model("efficientdet_d0", pretrained=sd).eval()  # effdet layout recognised and renamed
    for size in [(512, 512), (300, 452)]:  # non-square and not a multiple of 128: SAME pools, odd upsampling
        theirs = peer(size=size)
        theirs.load_state_dict(sd)
        x = torch.randn(2, 3, *size)
        with torch.inference_mode():
            (ec, eb), (oc, ob) = theirs.eval()(x), ours(x)
        assert_same(ec + eb, oc + ob)


@pytest.mark.parametrize("fusion,fpn_name", [("sum", "bifpn_sum"), ("softmax", "bifpn_attn")])
def test_other_fusions_match_effdet(fusion, fpn_name):
    sd = calibrated_effdet_weights(fpn_name=fpn_name)
    ours = bk.create_model("efficientdet_d0", fusion=fusion, pretrained=sd).eval()
    size = (96, 160)
    theirs = peer(size=size, fpn_name=fpn_name)
    theirs.load_state_dict(sd)
    x = torch.randn(2, 3, *size)
    with torch.inference_mode():
        (ec, eb), (oc, ob) = theirs.eval()(x), ours(x)
    assert_same(ec + eb, oc + ob)


def test_non_tf_variant_matches_effdet_efficientdet_d0():
    # Symmetric padding and no bias before BN: effdet's own-trained efficientdet_d0 (effdet: 3,877,763).
    sd = calibrated_effdet_weights("efficientdet_d0")
    ours = bk.create_model("efficientdet_d0", backbone="efficientnet_b0", tf_same=False, conv_bias=False,
                           pretrained=sd).eval()
    assert count(ours) == 3_877_763
    size = (96, 160)
    theirs = peer("efficientdet_d0", size)
    theirs.load_state_dict(sd)
    x = torch.randn(2, 3, *size)
    with torch.inference_mode():
        (ec, eb), (oc, ob) = theirs.eval()(x), ours(x)
    assert_same(ec + eb, oc + ob)


def test_weights_for_another_class_count_keep_a_fresh_predictor():
    sd = peer(size=(128, 128)).state_dict()  # 90 classes
    with pytest.warns(UserWarning, match="90 classes"):
        ours = bk.create_model("efficientdet_d0", num_classes=3, pretrained=sd)
    assert ours.class_net.predict.pw.weight.shape[0] == 9 * 3
    assert torch.equal(ours.box_net.predict.pw.weight, sd["box_net.predict.conv_pw.weight"])


def test_anchor_count_equals_head_outputs_at_384x1280():
    model = bk.create_model("efficientdet_d0", num_classes=3, image_size=(384, 1280)).eval()
    anchors = model.anchors()
    with torch.inference_mode():
        cls, box = model(torch.randn(1, 3, 384, 1280))
        flat_cls, flat_box = flatten_level_outputs(cls, box, 3)
    assert [tuple(c.shape[-2:]) for c in cls] == anchors.level_sizes
    assert flat_cls.shape == (1, len(anchors), 3) and flat_box.shape == (1, len(anchors), 4)
    assert [c.shape[1] for c in cls] == [9 * 3] * 5 and [b.shape[1] for b in box] == [9 * 4] * 5


def test_resnet50_backbone_any_size():
    model = bk.create_model("efficientdet_d0", num_classes=3, backbone="resnet50").eval()
    assert model.backbone.channels == [512, 1024, 2048] and model.backbone.strides == [8, 16, 32]
    size = (100, 150)
    with torch.inference_mode():
        cls, box = model.forward_flat(torch.randn(2, 3, *size))
    anchors = model.anchors(size)
    assert cls.shape == (2, len(anchors), 3) and box.shape == (2, len(anchors), 4)
    assert torch.isfinite(cls).all() and torch.isfinite(box).all()


def test_configs_follow_the_paper_table():
    table = {  # input, backbone, BiFPN channels, BiFPN repeats, head repeats (the paper's table)
        "d0": (512, "b0", 64, 3, 3), "d1": (640, "b1", 88, 4, 3), "d2": (768, "b2", 112, 5, 3),
        "d3": (896, "b3", 160, 6, 4), "d4": (1024, "b4", 224, 7, 4), "d5": (1280, "b5", 288, 7, 4),
        "d6": (1280, "b6", 384, 8, 5), "d7": (1536, "b6", 384, 8, 5)}
    for variant, (size, backbone, channels, fpn_repeats, head_repeats) in table.items():
        c = ed.CONFIGS[variant]
        assert (c.image_size, c.backbone) == ((size, size), f"tf_efficientnet_{backbone}")
        assert (c.fpn_channels, c.fpn_repeats, c.head_repeats) == (channels, fpn_repeats, head_repeats)
        assert c.anchor_scale == (5.0 if variant == "d7" else 4.0)
        assert c.fusion == ("sum" if variant in ("d6", "d7") else "fast")
    assert set(bk.list_models("efficientdet_d*")) >= {f"efficientdet_d{i}" for i in range(8)}


def test_head_init_and_bifpn_layout():
    model = bk.create_model("efficientdet_d0")
    bias = model.class_net.predict.pw.bias
    assert torch.allclose(bias, torch.full_like(bias, -math.log((1 - 0.01) / 0.01)))
    assert (model.box_net.predict.pw.bias == 0).all()
    # TF's node graph: 4 top-down then 4 bottom-up nodes; outputs are the last 5 ids.
    assert bifpn_nodes(5) == [(3, [3, 4]), (2, [2, 5]), (1, [1, 6]), (0, [0, 7]),
                              (1, [1, 7, 8]), (2, [2, 6, 9]), (3, [3, 5, 10]), (4, [4, 11])]
    assert len(model.class_net.norms) == 5 and len(model.class_net.norms[0]) == 3  # one BN per level and repeat


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown EfficientDet option"):
        bk.create_model("efficientdet_d0", fpn_width=3)
    with pytest.raises(ConfigError, match="fusion"):
        bk.create_model("efficientdet_d0", fusion="max")
