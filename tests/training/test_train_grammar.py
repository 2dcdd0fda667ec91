"""One grammar: the same flag for the same concept in every train command; old spellings still work and say so."""
import pytest
import torch

from backbonekit.cli import build_parser, parse
from backbonekit.errors import ConfigError
from backbonekit.io.config_file import subparser
from backbonekit.training import train_args
from backbonekit.training.settings import TrainSettings
from backbonekit.training.optim import build_schedule

SHARED = {"--optimizer", "--lr", "--backbone-lr-mult", "--weight-decay", "--scheduler", "--warmup-epochs",
          "--lr-steps", "--step-size", "--clip-grad", "--ema", "--freeze-backbone", "--freeze-bn", "--skip-bad-images",
          "--image-size", "--precision", "--devices", "--accelerator", "--batch-size", "--config", "--exist-ok",
          "--resume", "--name", "--seed", "--epochs", "--limit-train-batches"}


@pytest.mark.parametrize("task", ["classify", "detect", "sequence"])
def test_every_train_command_speaks_the_same_flags(task):
    options = {s for a in subparser(build_parser(), ["train", task])._actions for s in a.option_strings}
    assert SHARED <= options, SHARED - options


def test_old_spellings_work_and_name_their_replacement(capsys):
    args = parse(["train", "sequence", "--data", "d", "--lr", "1e-3", "--backbone-lr", "2e-4", "--skip-missing"])
    err = capsys.readouterr().err
    assert "--backbone-lr is deprecated, use --backbone-lr-mult" in err and "--skip-missing is deprecated" in err
    assert args.skip_bad_images and TrainSettings.from_args(args).optim().backbone_lr_mult == pytest.approx(0.2)
    assert parse(["train", "detect", "--data", "d", "--frozen-bn"]).freeze_bn
    assert "use --freeze-bn" in capsys.readouterr().err


def test_precision_has_one_set_of_spellings():
    assert parse(["train", "classify", "--data", "d", "--precision", "bf16"]).precision == "bf16-mixed"
    assert parse(["train", "classify", "--data", "d", "--precision", "fp32"]).precision == "32"
    assert parse(["bench", "resnet18", "--precision", "bf16-mixed"]).precision == "bf16"
    with pytest.raises(SystemExit):
        parse(["train", "classify", "--data", "d", "--precision", "fp8"])


def test_image_size_is_one_number_or_h_w():
    assert train_args.image_size([64], (32, 32), "detect") == (64, 64)
    assert train_args.image_size([64, 96], (32, 32), "detect") == (64, 96)
    assert train_args.image_size(None, 224, "classify", square=True) == 224
    with pytest.raises(ConfigError, match="square"):
        train_args.image_size([64, 96], 224, "classify", square=True)
    with pytest.raises(ConfigError, match="at least 8"):
        train_args.image_size([0], 224, "classify", square=True)


def _multipliers(name, epochs=4, steps_per_epoch=10, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_schedule(opt, name, total_steps=epochs * steps_per_epoch, epochs=epochs, **kw)["lr_scheduler"]
    out = []
    for _ in range(epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step()
    return out


def test_step_schedule_warms_up_then_steps_at_the_given_epochs_or_every_n():
    lr = _multipliers("step", warmup_epochs=1, lr_steps=[2, 3])
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)  # linear over the first epoch's 10 steps
    assert lr[19] == pytest.approx(1.0) and lr[20] == pytest.approx(0.1) and lr[30] == pytest.approx(0.01)
    every = _multipliers("step", step_size=1)
    assert [every[i] for i in (0, 10, 20, 30)] == pytest.approx([1.0, 0.1, 0.01, 0.001])


def test_freeze_backbone_holds_the_sequence_backbone():
    from backbonekit.sequence.task import SequenceTask

    task = SequenceTask(backbone="resnet18", image_size=64, freeze_backbone=True).train()
    assert not any(p.requires_grad for p in task.model.backbone.parameters())
    assert not task.model.backbone.training and task.model.transformer.training
    assert any(p.requires_grad for p in task.model.parameters())


def test_freeze_backbone_holds_the_detector_backbone():
    from backbonekit.detection.task import DetectionTask

    task = DetectionTask(model="efficientdet_d0", backbone="resnet18", image_size=[64, 64], num_classes=2,
                         class_names=["a", "b"], freeze_backbone=True).train()
    assert not any(p.requires_grad for p in task.model.backbone.parameters())
    assert not task.model.backbone.training
    assert all(p.requires_grad for n, p in task.model.named_parameters() if not n.startswith("backbone."))


def test_eval_and_predict_take_an_accelerator_and_refuse_a_missing_gpu(monkeypatch, tmp_path, capsys):
    from backbonekit.cli import main
    from backbonekit.training.inference import pick_device

    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "gpu"):  # gpu: train's --accelerator word
        with pytest.raises(ConfigError, match=f"--accelerator {name}: no CUDA device"):
            pick_device(name)
    for verb, task in (("eval", "classify"), ("predict", "detect"), ("predict", "sequence")):
        options = {s for a in subparser(build_parser(), [verb, task])._actions for s in a.option_strings}
        assert {"--accelerator", "--runtime-precision"} <= options


def test_a_resumed_schedule_follows_the_raised_epochs_not_the_old_end():
    # The old run: 4 epochs of 10 steps, cosine; saved at its end (lr 0). Resumed with 8 epochs, the schedule must
    # be the 8-epoch one at step 40 (half-way: lr 0.5), not the restored 4-epoch one (0 for ever).
    def scheduler(epochs):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return opt, build_schedule(opt, "cosine", total_steps=epochs * 10, epochs=epochs)["lr_scheduler"]["scheduler"]

    opt, old = scheduler(4)
    for _ in range(40):
        opt.step()
        old.step()
    opt2, new = scheduler(8)
    new.load_state_dict(old.state_dict())
    assert new.last_epoch == 40
    assert new.get_lr()[0] == pytest.approx(0.5, abs=0.05)  # the lr the next step trains with


@pytest.mark.parametrize(("typed", "limit"), [("5", 5), ("0.25", 0.25), ("1.0", 1.0), ("1", 1)])
def test_limit_batches_reads_whole_numbers_as_batches_and_decimals_as_shares(typed, limit):
    """Lightning's reading: 1.0 is every batch (it was once read as one batch); a type that says which."""
    got = parse(["train", "classify", "--data", "d", "--limit-train-batches", typed]).limit_train_batches
    assert got == limit and type(got) is type(limit)


def test_limit_batches_refuses_a_share_above_one(capsys):
    with pytest.raises(SystemExit):
        parse(["train", "classify", "--data", "d", "--limit-val-batches", "2.5"])
    assert "a share up to 1.0, got 2.5" in capsys.readouterr().err
