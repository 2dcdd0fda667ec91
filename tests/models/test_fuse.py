import pytest
import torch

import backbonekit as bk
from backbonekit.nn.fuse import fuse_batchnorm
from parity_helpers import calibrate_bn


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "tf_efficientnet_b0"])
def test_fused_model_computes_the_same(name):
    model = calibrate_bn(bk.create_model(name), (96, 128))
    x = torch.randn(2, 3, 96, 128)
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_batchnorm(model)
        got = fused(x)
    assert not any(type(m) is torch.nn.BatchNorm2d for m in fused.modules())
    assert (expected[0] - expected[1]).abs().max() > 1e-2
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
