"""Issue 9: D0 trained from scratch with small batches must validate with normalisation statistics that its eval-mode
forward actually produces, or the validation loss jumps (0.6 one epoch, 10–900 the next) while training falls."""
import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from backbonekit.detection.data import build_detection_data
from backbonekit.detection.synth import synthesize_shapes
from backbonekit.detection.task import DetectionTask
from backbonekit.detection.transforms import collate

pytestmark = pytest.mark.usefixtures("one_thread")


def test_validation_uses_batch_norm_statistics_consistent_with_eval_mode(tmp_path):
    synthesize_shapes(tmp_path / "shapes", "coco", 40, 0, (64, 64))
    data = build_detection_data(tmp_path / "shapes", (64, 64), val_fraction=0.2, seed=0, augment=False)
    train = DataLoader(data.train, batch_size=8, shuffle=True, drop_last=True, collate_fn=collate)
    val = DataLoader(data.val, batch_size=8, collate_fn=collate)
    # lr 0: the weights stay as initialised, so running statistics cannot lag behind them; momentum 0.5: after the
    # epoch's 4 steps they are what training-time BN with batches of 8 makes of this network.
    task = DetectionTask(num_classes=3, class_names=["a", "b", "c"], image_size=(64, 64), lr=0.0, epochs=1,
                         warmup_epochs=0.0, bn_momentum=0.5, drop_path_rate=0.0)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(task, train, val)

    # The statistics each BN's input really has when the whole network runs in eval mode on the training images.
    images = torch.cat([x for x, _ in DataLoader(data.train, batch_size=len(data.train), collate_fn=collate)])
    norms = {n: m for n, m in task.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, i[0])) for n, m in norms.items()]
    task.eval()
    with torch.no_grad():
        task(images)
    for h in hooks:
        h.remove()
    worst = {}
    for name, m in norms.items():
        x = seen[name]
        var = x.var((0, 2, 3), unbiased=False) + m.eps
        shift = (x.mean((0, 2, 3)) - m.running_mean).abs() / var.sqrt()
        ratio = var / (m.running_var + m.eps)
        worst[name] = max(abs(ratio.mean().item() - 1), shift.mean().item())
    name = max(worst, key=worst.get)
    # Running averages of batch-8 statistics: the SE-gated projection convs of the backbone's deep stages see
    # ~25 % more variance in eval mode than their running variance says, and the errors compound downstream.
    assert worst[name] < 0.1, f"{name}: eval-mode input statistics off the running ones by {worst[name]:.0%}"


def test_group_norm_detector_computes_in_eval_mode_what_it_computes_in_training():
    """``--norm group`` (the from-scratch default): nothing depends on batch statistics, so validation sees the
    network that training optimised, whatever the batch size; with BatchNorm the two differ."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    outputs = {}
    for norm in ("group", "batch"):
        task = DetectionTask(num_classes=3, image_size=(64, 64), drop_path_rate=0.0, norm=norm)
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in task.modules())
        assert has_bn == (norm == "batch")
        with torch.no_grad():
            train_mode = task.train()(images)[0]
            eval_mode = task.eval()(images)[0]
        outputs[norm] = (train_mode - eval_mode).abs().max().item()
    assert outputs["group"] < 1e-5
    assert outputs["batch"] > 1e-2


def test_norm_auto_is_group_from_scratch_and_batch_with_pretrained_weights():
    from argparse import Namespace

    from backbonekit.detection.train import norm_choice
    from backbonekit.errors import ConfigError

    args = dict(norm="auto", pretrained=None, pretrained_backbone=None)
    assert norm_choice(Namespace(**args)) == "group"
    assert norm_choice(Namespace(**{**args, "pretrained_backbone": "b0.pth"})) == "batch"
    assert norm_choice(Namespace(**{**args, "pretrained": "d0.pth"})) == "batch"
    assert norm_choice(Namespace(**{**args, "norm": "batch"})) == "batch"
    with pytest.raises(ConfigError, match="freeze_bn"):
        DetectionTask(num_classes=3, image_size=(64, 64), norm="group", frozen_bn=True)
    with pytest.raises(ConfigError, match="batch or group"):
        DetectionTask(num_classes=3, image_size=(64, 64), norm="layer")
