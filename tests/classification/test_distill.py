"""Knowledge distillation: the loss (T², batchmean), the frozen teacher kept outside the student, one CLI run."""
import json

import pytest
import torch
import torch.nn.functional as F

from backbonekit.classification.task import ClassificationTask, distillation_loss, load
from backbonekit.cli import main
from backbonekit.training.task_io import save_task_weights

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--optimizer", "adamw",
        "--lr", "1e-3", "--progress", "lines"]


def _teacher_file(path, num_classes=3, model="resnet18"):
    """A teacher file as `train classify` writes it (random weights: only its interface matters here)."""
    task = ClassificationTask(model=model, num_classes=num_classes, class_names=[str(i) for i in range(num_classes)],
                              image_size=32)
    save_task_weights(task, dict(task.hparams), path)
    return path


def test_kl_of_identical_logits_is_zero():
    logits = torch.randn(8, 10)
    assert distillation_loss(logits, logits.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(logits, logits.clone(), 1.0, kind="mse").item() == 0.0


def test_batchmean_is_sum_over_classes_divided_by_batch():
    s, t, T = torch.randn(6, 10), torch.randn(6, 10), 3.0
    p_t = F.softmax(t / T, -1)
    summed = (p_t * (p_t.log() - F.log_softmax(s / T, -1))).sum()
    assert distillation_loss(s, t, T).item() == pytest.approx((T * T * summed / 6).item(), rel=1e-5)
    assert distillation_loss(s, t, T).item() != pytest.approx((T * T * summed / 60).item(), rel=1e-2)


def test_temperature_squared_keeps_gradient_scale():
    torch.manual_seed(0)
    student, teacher = torch.randn(32, 10), torch.randn(32, 10)

    def grad_norm(T, squared):
        s = student.clone().requires_grad_(True)
        loss = distillation_loss(s, teacher, T)
        (loss if squared else loss / (T * T)).backward()
        return s.grad.norm().item()

    with_t2 = [grad_norm(T, True) for T in (1, 4, 8)]
    without = [grad_norm(T, False) for T in (1, 4, 8)]
    assert max(with_t2) / min(with_t2) < 2            # roughly constant across T
    assert max(without) / min(without) > 10           # shrinks as 1/T² without the factor


def test_teacher_is_frozen_and_outside_the_student(tmp_path):
    path = _teacher_file(tmp_path / "teacher.safetensors")
    task = ClassificationTask(model="resnet18", num_classes=3, image_size=32, teacher=str(path))
    assert task.teacher is not None and not task.teacher.training
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert not any("teacher" in k for k in task.state_dict())
    assert all(id(m) != id(task.teacher) for m in task.modules())
    task.train()
    assert not task.teacher.training                  # the student's train() leaves the teacher in eval mode
    x, y = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 1, 2, 0])
    task.training_loss((x, y)).backward()
    assert all(p.grad is None for p in task.teacher.parameters())


def test_wrong_class_count_teacher_is_one_line(image_folder, tmp_path, capsys):
    path = _teacher_file(tmp_path / "five.safetensors", num_classes=5)
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--out", str(tmp_path / "runs"),
                 "--teacher", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --teacher") and "five.safetensors" in err[0]
    assert "5 classes" in err[0] and "3" in err[0]


def test_train_classify_with_teacher_and_cutmix(image_folder, tmp_path):
    teacher = _teacher_file(tmp_path / "teacher.safetensors", model="resnet34")  # another model: same input contract
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--out", str(out), "--name", "kd",
                 "--val-ratio", "0.34", "--teacher", str(teacher), "--distill-temperature", "2",
                 "--distill-alpha", "0.5", "--cutmix", "1.0"]) == 0
    run = out / "classify" / "kd"
    hp = torch.load(run / "best.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["teacher"] == str(teacher) and hp["distill_alpha"] == 0.5 and hp["distill_temperature"] == 2.0
    state = torch.load(run / "last.ckpt", weights_only=True)["state_dict"]
    assert not any("teacher" in k for k in state)
    teacher.unlink()                                   # the trained student rebuilds without its teacher
    for name in ("best.ckpt", "best.safetensors"):
        student = load(run / name)
        assert student.teacher is None and student.cfg.model == "resnet18"
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 1
