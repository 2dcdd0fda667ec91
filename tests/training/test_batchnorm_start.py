"""Fresh BatchNorms start their running statistics from the data (training/batchnorm_start.py): after a short run
every BatchNorm's running variance is the variance of what it sees, not PyTorch's initial 1; loaded statistics keep
their own momentum."""
import torch
from torch import nn

from backbonekit.cli import main
from backbonekit.tasks import load_trained
from backbonekit.training.batchnorm_start import FreshBatchNormStart


def test_a_short_run_leaves_running_variances_that_match_the_data(tmp_path):
    # GoogLeNet's convolutions start at std 0.01: its first BatchNorm sees a variance far below 1. Before this
    # callback, 6 steps at momentum 0.1 left 0.9⁶ = 53% of the initial 1 in it, ~100× the true value.
    assert main(["train", "classify", "--data", "digits", "--model", "googlenet", "--stem", "small", "--image-size",
                 "16", "--epochs", "2", "--limit-train-batches", "3", "--limit-val-batches", "1", "--batch-size", "32",
                 "--out", str(tmp_path), "--name", "g", "--progress", "lines", "--threads", "1"]) == 0
    _, task = load_trained(tmp_path / "classify" / "g" / "last.ckpt")
    task.eval()
    seen = {}
    norms = {n: m for n, m in task.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, m in norms.items():
        m.register_forward_hook(lambda m, i, o, name=name: seen.update({name: i[0].transpose(0, 1).flatten(1)}))
    from sklearn.datasets import load_digits

    digits = torch.from_numpy(load_digits().images[:256]).float() / 16 * 255
    images = nn.functional.interpolate(digits[:, None], size=16, mode="bilinear").round().to(torch.uint8)
    with torch.no_grad():
        task(images.expand(-1, 3, -1, -1))
    first = next(iter(norms))
    ratio = seen[first].var(1).mean() / norms[first].running_var.mean()
    assert 0.33 < ratio < 3, f"{first}: the data's variance is {float(ratio):.3f}× the running one"
    assert all(int(m.num_batches_tracked) == 6 for m in norms.values())


def test_only_fresh_batchnorms_average_their_first_batches_then_keep_their_momentum():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.25), nn.BatchNorm2d(4))
    loaded = model[2]
    loaded.running_var.fill_(0.5)  # as if loaded from pretrained weights
    callback = FreshBatchNormStart()
    x = torch.randn(8, 3, 6, 6) * 0.05
    means = []
    for step in range(6):
        callback.on_train_batch_start(None, model, None, step)
        assert model[1].momentum == (None if step < 4 else 0.25)  # ⌈1/0.25⌉ = 4 batches averaged equally
        assert loaded.momentum == 0.1
        with torch.no_grad():
            y = model[0](x + step * 0.01)
            means.append(y.mean((0, 2, 3)))
            model[2](model[1](y))
        callback.on_train_batch_end(None, model, None, None, step)
        assert model[1].momentum == 0.25
    # the first 4 batches' means averaged equally, then two EMA steps: no trace of the initial 0
    expected = torch.stack(means[:4]).mean(0)
    for m in means[4:]:
        expected = 0.75 * expected + 0.25 * m
    assert torch.allclose(model[1].running_mean, expected, atol=1e-6)
    assert callback.state_dict() == {"fresh": ["1"]}


def test_a_resumed_run_keeps_the_set_of_fresh_layers_it_began_with():
    model = nn.Sequential(nn.BatchNorm2d(2))
    model[0].running_var.fill_(3.0)       # statistics after a few batches: no longer "fresh"
    model[0].num_batches_tracked.fill_(2)
    callback = FreshBatchNormStart()
    callback.load_state_dict({"fresh": ["0"]})
    callback.on_train_batch_start(None, model, None, 0)
    assert model[0].momentum is None      # still within its first ⌈1/0.1⌉ = 10 batches, as before the stop
