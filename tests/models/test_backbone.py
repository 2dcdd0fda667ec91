"""Backbone mode: feature levels, frozen BatchNorm, frozen stages, dilation, masks."""
import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

import backbonekit as bk


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_b0", "tf_efficientnet_b3"])
def test_every_level_has_the_channels_and_stride_of_feature_info(name):
    model = bk.create_model(name).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        levels = model.forward_levels(x)
    assert len(levels) == len(model.feature_info)
    for out, info in zip(levels, model.feature_info):
        assert out.shape[1] == info["num_chs"]
        assert out.shape[-2:] == (96 // info["reduction"], 128 // info["reduction"])


def test_default_levels_and_truncation():
    backbone = bk.create_backbone("efficientnet_b0")
    assert backbone.strides == [4, 8, 16, 32] and backbone.channels == [24, 40, 112, 320]
    assert isinstance(backbone.body.head, torch.nn.Identity)  # unused head removed
    resnet = bk.create_backbone("resnet50", out_indices=(2, 3))
    assert resnet.channels == [512, 1024] and resnet.strides == [8, 16]
    assert not any(n.startswith("layer4") for n, _ in resnet.named_parameters())
    outs = resnet(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 512, 8, 8), (2, 1024, 4, 4)]


def test_effdet_style_backbone_has_the_feature_only_parameter_count():
    timm = pytest.importorskip("timm")
    peer = timm.create_model("tf_efficientnet_b0", features_only=True, out_indices=(2, 3, 4))
    ours = bk.create_backbone("tf_efficientnet_b0", out_indices=(2, 4, 6))
    assert ours.channels == peer.feature_info.channels() and ours.strides == peer.feature_info.reduction()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in peer.parameters())


def test_dilation_gives_output_stride_16_and_seqdeepfake_shapes():
    resnet = bk.create_backbone("resnet50", out_indices=(4,), dilation=True)
    assert resnet.strides == [16]
    assert resnet(torch.randn(1, 3, 256, 256))[0].shape == (1, 2048, 16, 16)
    effnet = bk.create_backbone("efficientnet_b4", out_indices=(7,))
    assert effnet(torch.randn(1, 3, 256, 256))[0].shape == (1, 1792, 8, 8)
    dilated = bk.create_backbone("efficientnet_b0", out_indices=(6,), dilation=True)
    assert dilated(torch.randn(1, 3, 128, 128))[0].shape[-2:] == (8, 8)


def test_frozen_bn_is_frozen():
    backbone = bk.create_backbone("resnet18", frozen_bn=True)
    norms = [m for m in backbone.modules() if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.train()
    x = torch.randn(2, 3, 64, 64)
    out1 = backbone(x)[-1]
    backbone(torch.randn(2, 3, 64, 64) * 5 + 3)  # train-mode forward would move BatchNorm statistics
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert torch.equal(out1, backbone(x)[-1])  # batch statistics are not used in train mode either
    assert not any("bn" in n for n, p in backbone.named_parameters())


def test_frozen_bn_loads_a_normal_batchnorm_state_dict():
    source = bk.create_model("resnet18")
    backbone = bk.create_backbone("resnet18", frozen_bn=True, pretrained=source.state_dict())
    torch.testing.assert_close(backbone.body.bn1.running_var, source.bn1.running_var)
    direct = bk.create_model("resnet18", norm_layer=FrozenBatchNorm2d, pretrained=source.state_dict())
    assert isinstance(direct.bn1, FrozenBatchNorm2d)


def test_frozen_bn_keeps_eps():
    backbone = bk.create_backbone("tf_efficientnet_b0", frozen_bn=True)
    assert backbone.body.stem.bn.eps == 1e-3


@pytest.mark.parametrize("trainable,frozen", [
    (0, {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}),
    (3, {"conv1", "bn1", "layer1"}),
    (5, set()),
])
def test_trainable_stages(trainable, frozen):
    backbone = bk.create_backbone("resnet50", trainable_stages=trainable)
    params = dict(backbone.body.named_parameters())
    assert {n.split(".")[0] for n, p in params.items() if not p.requires_grad} == frozen
    assert {n.split(".")[0] for n, p in params.items() if p.requires_grad}.isdisjoint(frozen)
    if trainable:
        # Gradients reach exactly the trainable parameters.
        backbone(torch.randn(1, 3, 64, 64))[-1].sum().backward()
        assert all((p.grad is not None) == p.requires_grad for p in backbone.parameters())


def test_trainable_stages_out_of_range():
    with pytest.raises(bk.errors.ConfigError, match="trainable_stages"):
        bk.create_backbone("resnet18", trainable_stages=6)


def test_masked_forward_resizes_the_padding_mask():
    backbone = bk.create_backbone("resnet18", out_indices=(2, 4))
    x = torch.randn(2, 3, 64, 96)
    mask = torch.zeros(2, 64, 96, dtype=torch.bool)
    mask[1, :, 64:] = True  # second image padded on the right
    outs = backbone.forward_masked(x, mask)
    for (feature, m), stride in zip(outs, (8, 32)):
        assert m.shape == (2, 64 // stride, 96 // stride) and m.dtype == torch.bool
        assert not m[0].any()
        assert m[1, :, -1].all() and not m[1, :, 0].any()
        assert feature.shape[-2:] == m.shape[-2:]


def test_bad_out_indices():
    with pytest.raises(bk.errors.ConfigError, match="levels 0..4"):
        bk.create_backbone("resnet18", out_indices=(5,))


def test_backbone_mode_drops_mlp_heads():
    """AlexNet/VGG: the pooled 3-layer MLP is no part of a feature extractor (VGG16's convs are 14.7M of 138M)."""
    import backbonekit as bk

    backbone = bk.create_backbone("vgg16", out_indices=(5,))
    assert sum(p.numel() for p in backbone.parameters()) == 14_714_688
    assert backbone(torch.zeros(1, 3, 64, 64))[0].shape == (1, 512, 2, 2)
