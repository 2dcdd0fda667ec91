"""``--ema``: the decay warms up with the number of updates, so a short run's average is not its random start."""
import pytest
import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel

from backbonekit.training.ema import WarmupEMA, warmup_decay, warmup_ema_update


def test_the_decay_warms_up_to_the_one_asked_for():
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 90) == pytest.approx(91 / 100)
    assert warmup_decay(0.999, 100_000) == 0.999


def test_an_average_of_230_steps_follows_the_weights():
    # The README's example: 10 epochs of the digits are 230 steps. A fixed 0.999 keeps 0.999^229 = 80 % of the start.
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    with torch.no_grad():
        net[0].weight.zero_()
    average = AveragedModel(net, multi_avg_fn=warmup_ema_update(0.999), use_buffers=True)
    for step in range(230):
        with torch.no_grad():
            net[0].weight.fill_(1.0)
            net[1].num_batches_tracked.fill_(step + 1)
        average.update_parameters(net)
    assert average.module[0].weight.min() > 0.9
    assert average.module[1].num_batches_tracked.item() == 230  # counters are copied, not averaged


def test_the_callback_keeps_its_decay():
    assert WarmupEMA(0.999).decay == 0.999
