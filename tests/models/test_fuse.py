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


def test_the_model_given_is_left_as_it_was():
    # As torch's fuse_modules: `fast = fuse_batchnorm(model)` is a fused copy; the model itself keeps its
    # BatchNorms, weights and training mode (it can still be trained or saved as it was).
    model = calibrate_bn(bk.create_model("resnet18", num_classes=4), (64, 64)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    x = torch.randn(2, 3, 64, 64)
    fast = fuse_batchnorm(model)
    assert fast is not model and model.training and not getattr(model, "is_fused", False)
    assert [type(m) for m in model.modules()] == types
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert fast.is_fused and not fast.training
    assert not any(type(m) is torch.nn.BatchNorm2d for m in fast.modules())
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model.eval()(x), atol=1e-4, rtol=1e-4)
    assert fuse_batchnorm(model, inplace=True) is model and model.is_fused
    assert not any(type(m) is torch.nn.BatchNorm2d for m in model.modules())
