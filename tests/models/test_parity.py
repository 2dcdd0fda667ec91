"""Peer weights load into our models and give the peers' outputs (max |diff| ≤ 1e-4), at 224² and non-square."""
import pytest
import torch
import torchvision

import backbonekit as bk
from parity_helpers import TOL, assert_same_outputs, calibrate_bn

SMALL = [(224, 224), (240, 320)]
CHEAP = [(128, 128), (96, 160)]  # the largest variants: same code paths, a fraction of the time

@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_torchvision_resnet(name):
    sizes = SMALL if name in ("resnet18", "resnet50") else CHEAP
    assert_same_outputs(name, getattr(torchvision.models, name)(), sizes)

@pytest.mark.parametrize("name", [f"efficientnet_b{i}" for i in range(8)])
def test_torchvision_efficientnet(name):
    sizes = SMALL if name in ("efficientnet_b0", "efficientnet_b1") else CHEAP
    assert_same_outputs(name, getattr(torchvision.models, name)(), sizes)

@pytest.mark.parametrize("timm_name,ours", [("efficientnet_b0", "efficientnet_b0"),
                                            ("tf_efficientnet_b0", "tf_efficientnet_b0"),
                                            ("tf_efficientnet_b4", "tf_efficientnet_b4"),
                                            ("resnet50", "resnet50")])
def test_timm(timm_name, ours):
    timm = pytest.importorskip("timm")
    sizes = SMALL if ours != "tf_efficientnet_b4" else [(224, 224), (190, 250)]
    assert_same_outputs(ours, timm.create_model(timm_name), sizes)

@pytest.mark.parametrize("variant", ["b0", "b4"])
def test_lukemelas_efficientnet_pytorch(variant):
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    # image_size=None: lukemelas' dynamic SAME padding, exact at any size (its default is static for one size).
    peer = efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
    sizes = SMALL if variant == "b0" else [(224, 224), (190, 250)]
    assert_same_outputs(f"tf_efficientnet_{variant}", peer, sizes)

def test_lukemelas_static_padding_at_its_own_size():
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    peer = efficientnet_pytorch.EfficientNet.from_name("efficientnet-b0")  # static padding computed for 224²
    assert_same_outputs("tf_efficientnet_b0", peer, [(224, 224)])

def test_lukemelas_features_equal_our_head_output():
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    peer = calibrate_bn(efficientnet_pytorch.EfficientNet.from_name("efficientnet-b0", image_size=None), (200, 232))
    ours = bk.create_model("tf_efficientnet_b0", pretrained=peer.state_dict()).eval()
    x = torch.randn(1, 3, 200, 232)
    with torch.inference_mode():
        assert torch.allclose(ours.forward_features(x), peer.extract_features(x), atol=TOL)

def test_symmetric_padding_is_not_tf_padding():
    # The check above could pass by accident if both paddings computed the same thing; they must not.
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    peer = calibrate_bn(efficientnet_pytorch.EfficientNet.from_name("efficientnet-b0", image_size=None), (224, 224))
    ours = bk.create_model("efficientnet_b0", bn_eps=1e-3, pretrained=peer.state_dict()).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert (ours(x) - peer(x)).abs().max() > 1e-3

def test_timm_output_stride_16_matches():
    timm = pytest.importorskip("timm")
    peer = calibrate_bn(timm.create_model("efficientnet_b0", output_stride=16), (160, 192))
    ours = bk.create_model("efficientnet_b0", output_stride=16, pretrained=peer.state_dict()).eval()
    x = torch.randn(1, 3, 160, 192)
    with torch.inference_mode():
        assert (ours(x) - peer(x)).abs().max() <= TOL
        assert ours.forward_features(x).shape[-2:] == (10, 12)

def test_torchvision_dilated_resnet50_matches():
    peer = calibrate_bn(torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True]), (128, 160))
    ours = bk.create_model("resnet50", replace_stride_with_dilation=[False, False, True],
                           pretrained=peer.state_dict()).eval()
    x = torch.randn(1, 3, 128, 160)
    with torch.inference_mode():
        assert (ours(x) - peer(x)).abs().max() <= TOL

def test_stride_in_1x1_moves_the_stride():
    v15 = calibrate_bn(bk.create_model("resnet50"), (64, 64))
    v1 = bk.create_model("resnet50", stride_in_1x1=True, pretrained=v15.state_dict()).eval()
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert v1.forward_features(x).shape == v15.forward_features(x).shape
        assert not torch.allclose(v1(x), v15(x))

def test_zero_init_residual():
    model = bk.create_model("resnet50", zero_init_residual=True)
    assert all(block.bn3.weight.abs().sum() == 0 for layer in (model.layer1, model.layer4) for block in layer)
