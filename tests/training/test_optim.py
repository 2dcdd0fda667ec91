"""The optimisers every task builds: the fused kernel where there is one, the same update as torch's default."""
import pytest
import torch

from backbonekit.training.optim import build_optimizer


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_fused_on_cpu_and_the_same_update_as_the_default_loop(name):
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(32)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(3)]
    params = {}
    for kind in ("ours", "default"):
        ps = [torch.nn.Parameter(p.clone()) for p in start]
        groups = [{"params": ps[:1], "weight_decay": 0.05}, {"params": ps[1:], "weight_decay": 0.0}]
        if kind == "ours":
            opt = build_optimizer(groups, name, lr=0.1)
            assert opt.defaults["fused"] is True
        else:
            opt = (torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, foreach=False) if name == "sgd"
                   else torch.optim.AdamW(groups, lr=0.1, foreach=False))
        for g in grads:
            for p, gp in zip(ps, g):
                p.grad = gp.clone()
            opt.step()
        params[kind] = ps
    for a, b in zip(params["ours"], params["default"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(params["ours"][0], start[0])


def test_falls_back_where_there_is_no_fused_kernel():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.int32).float().to("meta"))
    opt = build_optimizer([{"params": [p], "weight_decay": 0.0}], "adamw", lr=1e-3)
    assert not opt.defaults.get("fused")
