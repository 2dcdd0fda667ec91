"""Semi-supervised training: the balanced labelled subset, the unlabelled stream, FixMatch / pseudo-label losses
and their logs, and `train classify --unlabeled` end to end."""
import csv

import numpy as np
import pytest
import torch

from backbonekit.classification.semi_data import SemiDataset, RawImages, select_labelled, unlabeled_images
from backbonekit.classification.task import ClassificationTask
from backbonekit.classification.transforms import build_transforms, strong_transforms
from backbonekit.cli import main
from backbonekit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--model", "resnet18", "--image-size", "16", "--batch-size", "8", "--epochs", "1", "--optimizer", "adamw",
        "--lr", "1e-3", "--progress", "lines"]


def test_labels_per_class_is_balanced_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), 10)
    chosen, rest = select_labelled(labels, 3, 4, seed=0)
    assert np.bincount(labels[chosen]).tolist() == [3, 3, 3, 3]
    assert len(set(chosen) & set(rest)) == 0 and len(chosen) + len(rest) == 40
    assert (select_labelled(labels, 3, 4, seed=0)[0] == chosen).all()
    assert not (select_labelled(labels, 3, 4, seed=1)[0] == chosen).all()
    with pytest.raises(ConfigError, match="class 0 has only 10"):
        select_labelled(labels, 11, 4, seed=0)


def test_semi_dataset_items_carry_mu_weak_and_strong_views():
    images = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8)

    class Set:
        labels = list(range(12))

        def raw(self, i):
            return images[i], self.labels[i]

        def __getitem__(self, i):
            return images[i], self.labels[i]

        def __len__(self):
            return 12

    unlabeled = RawImages.subset(Set(), [5, 6, 7])
    ds = SemiDataset(Set(), unlabeled, weak=build_transforms(8, train=True, flip=False),
                     strong=strong_transforms(8, flip=False), mu=4)
    item = ds[0]
    assert len(ds) == 12 and item["weak"].shape == (4, 3, 8, 8) and item["strong"].shape == (4, 3, 8, 8)
    assert item["weak"].dtype == torch.uint8 and set(item["true"].tolist()) <= {5, 6, 7}
    with pytest.raises(ConfigError, match="needs --labels-per-class"):
        unlabeled_images("digits-rest", Set(), None)


@pytest.mark.parametrize("semi", ["fixmatch", "pseudo-label"])
def test_semi_loss_masks_by_threshold_and_measures_pseudo_labels(semi):
    torch.manual_seed(0)
    task = ClassificationTask(model="resnet18", num_classes=3, image_size=16, semi=semi, mu=2, threshold=0.0)
    batch = task.example_batch(4)
    batch["true"] = torch.randint(0, 3, (4, 2))
    assert ("strong" in batch) == (semi == "fixmatch")
    loss = task.training_loss(batch)
    loss.backward()
    stats = task._semi_stats
    assert stats["mask_rate"].item() == 1.0 and stats["unlabelled_loss"].item() > 0
    acc, used = stats["pseudo_acc"]
    assert used == 8 and 0 <= acc.item() <= 1
    task.cfg.threshold = 1.0                           # nothing is that confident: no unlabelled loss, no accuracy
    task.training_loss(batch)
    assert task._semi_stats["mask_rate"].item() == 0.0 and task._semi_stats["unlabelled_loss"].item() == 0.0
    assert "pseudo_acc" not in task._semi_stats


def test_strong_views_stay_out_of_the_inference_statistics():
    # The running averages after a FixMatch step are those of the labelled + weak batch alone.
    torch.manual_seed(0)
    task = ClassificationTask(model="resnet18", num_classes=3, image_size=16, semi="fixmatch", mu=2,
                              threshold=0.0).train()
    batch = task.example_batch(4)
    batch["strong"] = torch.full_like(batch["strong"], 255)  # far from the other images' statistics
    alone = ClassificationTask(model="resnet18", num_classes=3, image_size=16).train()
    alone.load_state_dict(task.state_dict())
    task.training_loss(batch)
    alone(torch.cat([batch["x"], batch["weak"].flatten(0, 1)]))
    bn, bn_alone = task.model.bn1, alone.model.bn1
    assert torch.allclose(bn.running_mean, bn_alone.running_mean)
    assert torch.allclose(bn.running_var, bn_alone.running_var)
    assert int(bn.num_batches_tracked) == int(bn_alone.num_batches_tracked) == 1


def test_running_stats_frozen_normalises_with_the_batch_and_restores_momentum():
    from backbonekit.nn.batchnorm import running_stats_frozen

    bn = torch.nn.BatchNorm2d(2).train()
    x = torch.randn(4, 2, 3, 3) * 5 + 3
    with running_stats_frozen(bn):
        y = bn(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(2), atol=1e-5)  # batch statistics used
    assert torch.equal(bn.running_mean, torch.zeros(2)) and torch.equal(bn.running_var, torch.ones(2))
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 0


def test_train_fixmatch_on_digits_rest_logs_mask_rate_and_pseudo_accuracy(tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", "digits", *FAST, "--out", str(out), "--name", "fm",
                 "--labels-per-class", "2", "--unlabeled", "digits-rest", "--mu", "2", "--threshold", "0.2"]) == 0
    run = out / "classify" / "fm"
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert len(rows) == 1 and 0 <= float(rows[0]["train/mask_rate"]) <= 1
    assert 0 <= float(rows[0]["train/pseudo_acc"]) <= 100
    hp = torch.load(run / "best.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["semi"] == "fixmatch" and hp["mu"] == 2
    assert (run / "best.safetensors").is_file()


def test_train_pseudo_label_on_an_image_folder(image_folder, tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--out", str(out), "--name", "pl",
                 "--val-ratio", "0.34", "--unlabeled", str(image_folder / "dog"), "--semi", "pseudo-label",
                 "--mu", "2", "--threshold", "0.0"]) == 0
    rows = list(csv.DictReader(open(out / "classify" / "pl" / "results.csv")))
    assert float(rows[0]["train/mask_rate"]) == 1.0 and "train/pseudo_acc" not in rows[0]  # folder: labels unknown
    assert torch.load(out / "classify" / "pl" / "best.ckpt", weights_only=True)["hyper_parameters"]["unsup_warmup"] \
        == 0.4  # USB's default for pseudo-labelling; FixMatch's is 0


def test_unsupervised_weight_ramps_up_linearly_over_the_warmup_share():
    from types import SimpleNamespace

    torch.manual_seed(0)
    task = ClassificationTask(model="resnet18", num_classes=3, image_size=16, semi="pseudo-label", mu=2,
                              threshold=0.0, unsup_warmup=0.5)
    batch = task.example_batch(4)
    losses = {}
    for step in (0, 25, 50, 80):
        task._trainer = SimpleNamespace(estimated_stepping_batches=100, global_step=step)
        assert task._unsup_ramp() == min(1.0, step / 50)
        task.eval()  # the same forward each time: only the ramp changes
        losses[step] = task.training_loss(batch).item()
    unlabelled = task._semi_stats["unlabelled_loss"].item()
    assert unlabelled > 0
    assert losses[25] == pytest.approx(losses[0] + 0.5 * unlabelled, rel=1e-5)
    assert losses[80] == pytest.approx(losses[50], rel=1e-6) == pytest.approx(losses[0] + unlabelled, rel=1e-5)


def test_semi_without_unlabeled_is_one_line(image_folder, tmp_path, capsys):
    assert main(["train", "classify", "--data", str(image_folder), *FAST, "--out", str(tmp_path),
                 "--semi", "fixmatch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--semi fixmatch needs --unlabeled" in err[0]
