import pytest
import torch

from backbonekit.sequence.task import DEFAULT_OPTIM, SequenceConfig, SequenceTask
from backbonekit.training.settings import nest_optim
from backbonekit.training.optim import WarmupStep


def test_official_schedule_and_scaling():
    assert SequenceConfig().schedule() == (20, [70, 120])
    warmup, steps = SequenceConfig(**nest_optim({"epochs": 17}, DEFAULT_OPTIM)).schedule()
    assert warmup == pytest.approx(2) and steps == pytest.approx([7, 12])
    given = nest_optim({"epochs": 17, "warmup_epochs": 0, "lr_steps": [5]}, DEFAULT_OPTIM)
    assert SequenceConfig(**given).schedule() == (0, [5])
    f = WarmupStep(4, [10, 20])
    assert [f(s) for s in (0, 1, 3, 4, 9, 10, 19, 20, 100)] == pytest.approx([0.25, 0.5, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_loss_ignores_pad_and_backbone_has_own_lr():
    task = SequenceTask(backbone="resnet18", image_size=64, lr=1e-3, backbone_lr=1e-4)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    labels = torch.tensor([[1, 2, 0, 0, 0], [0, 0, 0, 0, 0]])
    task.eval()  # dropout off for an exact comparison
    loss = task._loss(images, labels)
    x = (images.float() / 255 - 0.5) / 0.5  # the input contract: uint8 in, the model's 0.5/0.5 statistics
    logits = task.model(x, torch.tensor([[0, 1, 2, 7, 7, 7], [0, 7, 7, 7, 7, 7]]))
    # targets [1, 2, EOS, PAD, PAD, PAD] and [EOS, PAD, …]: only 4 positions are scored
    picked = torch.log_softmax(logits, -1)[[0, 0, 0, 1], [0, 1, 2, 0], [1, 2, 6, 6]]
    assert loss.item() == pytest.approx(-picked.mean().item(), rel=1e-5)

    class _Trainer:
        estimated_stepping_batches = 170

    task.trainer = _Trainer()
    opt = task.configure_optimizers()["optimizer"]  # 170 steps over 170 epochs: warm-up 20 steps
    lrs = sorted(g["initial_lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([1e-4, 1e-3]) and all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    backbone = {id(p) for p in task.model.backbone.parameters()}
    assert {id(p) for p in opt.param_groups[1]["params"]} == backbone
