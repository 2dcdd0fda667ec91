"""Shared by the parity tests: compare our model with a peer library's on the peer's own weights."""
import torch

import backbonekit as bk

TOL = 1e-4


def assert_same_outputs(ours_name, peer, sizes, **kwargs):
    peer = calibrate_bn(peer, sizes[0])
    ours = bk.create_model(ours_name, pretrained=peer.state_dict(), **kwargs).eval()
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        with torch.inference_mode():
            expected, got = peer(x), ours(x)
        assert got.shape == expected.shape
        # Non-vacuous: the logits must depend on the image (random-init nets in eval mode can output ~constants).
        assert (expected[0] - expected[1]).abs().max() > 1e-2
        assert (got - expected).abs().max().item() <= TOL, (ours_name, (h, w))


def calibrate_bn(model, size, seed=1):
    """Give BatchNorm statistics that match the activations, as trained weights have.

    With fresh statistics (mean 0, var 1) the activations of a random deep net shrink to ~1e-12 in eval mode and
    every output is dominated by the classifier bias, so a comparison of logits would prove nothing.
    """
    from backbonekit.nn.batchnorm import reestimate_batch_norm

    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    reestimate_batch_norm(model, [torch.randn(4, 3, *size, generator=g)])
    return model.eval()
