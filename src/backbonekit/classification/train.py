"""``train classify``: data → ClassificationTask, through the shared training routine; then the confusion matrix.

With ``--labels-per-class`` the labelled set is a seeded balanced subset; ``--unlabeled`` with ``--semi`` adds the
unlabelled stream; ``--teacher`` distils. ``noisy_student`` calls ``_train`` with pseudo-labelled images to add."""
from __future__ import annotations

import json
import os
import sys
from typing import Callable

from torch.utils.data import ConcatDataset, Dataset, Subset

from backbonekit.classification.data import (ClassificationData, build_classification_data, channel_stats,
                                             flips_keep_class)
from backbonekit.classification.semi_data import SemiDataset, select_labelled, unlabeled_images
from backbonekit.classification.transforms import build_transforms, mixing_collate, strong_transforms
from backbonekit.errors import ConfigError
from backbonekit.io.images import report_skipped
from backbonekit.models.registry import default_cfg
from backbonekit.training import train_args
from backbonekit.training.engine import FitResult
from backbonekit.training.settings import TrainSettings
from backbonekit.training.task_spec import get_task
from backbonekit.training.train_routine import TrainPlan, train_task


def train_classifier(args: TrainSettings) -> FitResult:
    return _train(args)


def labelled_split(args: TrainSettings, data: ClassificationData) -> tuple[Dataset, object]:
    """The labelled training set (all of it, or ``--labels-per-class`` of each class) and the indices left out."""
    per_class = getattr(args, "labels_per_class", None)
    if not per_class:
        return data.train, None
    chosen, rest = select_labelled(data.train.labels, per_class, len(data.class_names), args.seed)
    return Subset(data.train, chosen.tolist()), rest


def load_data(args: TrainSettings, image_size: int) -> ClassificationData:
    data = build_classification_data(args.data, image_size=image_size, augment=args.augment,
                                     val_ratio=args.val_ratio, seed=args.seed, skip_bad_images=args.skip_bad_images,
                                     crop_padding=getattr(args, "crop_padding", None),
                                     random_erasing=getattr(args, "random_erasing", 0.0))
    report_skipped(data.skipped)
    return data


def _train(args: TrainSettings, *, extra_train: Callable[[ClassificationData, int], Dataset] | None = None,
           labelled_wrap: Callable[[Dataset, int], Dataset] | None = None, run_task: str = "classify",
           extra_hparams: dict | None = None) -> FitResult:
    """One training run. ``extra_train(data, image_size)`` → images added to the labelled ones (Noisy Student's
    pseudo-labelled set), ``labelled_wrap(labelled, num_classes)`` adapts the labelled set to them (soft targets);
    ``run_task`` is the folder under ``--out`` the run goes to."""
    def plan(a: TrainSettings) -> TrainPlan:
        return plan_classification(a, extra_train, labelled_wrap, extra_hparams)
    return train_task(args, get_task("classify"), plan, _finish, run_task=run_task)


def plan_classification(args: TrainSettings, extra_train=None, labelled_wrap=None,
                        extra_hparams: dict | None = None) -> TrainPlan:
    defaults = default_cfg(args.model)  # an unknown name fails here, before any data is read
    image_size = train_args.image_size(args.image_size, defaults["input_size"][-1], "classify", square=True)
    data = load_data(args, image_size)
    labelled, rest = labelled_split(args, data)
    unlabeled, semi = getattr(args, "unlabeled", None), getattr(args, "semi", None)
    if semi and not unlabeled:
        raise ConfigError(f"--semi {semi} needs --unlabeled (a folder of images, or digits-rest)")
    semi = (semi or "fixmatch") if unlabeled else None
    if semi and (args.cutmix or args.mixup):
        raise ConfigError("--semi does not combine with --cutmix/--mixup (the unlabelled loss takes hard labels)")
    lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 1e-3)
    config = dict(model=args.model, num_classes=len(data.class_names), class_names=data.class_names,
                  pretrained=args.pretrained, image_size=image_size, **args.optim_config(lr=lr),
                  label_smoothing=args.label_smoothing, drop_rate=args.drop_rate, drop_path_rate=args.drop_path_rate,
                  stem=getattr(args, "stem", "imagenet"))
    if getattr(args, "normalize", "model") == "data":
        mean, std = channel_stats(labelled)
        config.update(mean=mean, std=std)
        print(f"--normalize data: mean {', '.join(f'{v:.4f}' for v in mean)}, std "
              f"{', '.join(f'{v:.4f}' for v in std)} (measured on the {len(labelled):,} training images)",
              file=sys.stderr)
    if getattr(args, "teacher", None):
        config.update(teacher=args.teacher, distill_alpha=args.distill_alpha,
                      distill_temperature=args.distill_temperature, distill_loss=args.distill_loss)
    if semi:
        warmup = getattr(args, "unsup_warmup", None)
        if warmup is None:
            online = semi == "pseudo-label" and not getattr(args, "teacher", None)
            warmup = 0.4 if online else 0.0  # a teacher's labels are as good at step 0 as later
        if not 0 <= warmup <= 1:
            raise ConfigError(f"--unsup-warmup must be between 0 and 1, got {warmup}")
        config.update(semi=semi, threshold=args.threshold, mu=args.mu, lambda_u=args.lambda_u, unsup_warmup=warmup)
    train_set = labelled_wrap(labelled, len(data.class_names)) if labelled_wrap else labelled
    if extra_train is not None:
        train_set = ConcatDataset([train_set, extra_train(data, image_size)])
    if semi:
        flip = flips_keep_class(args.data, data.source)
        train_set = SemiDataset(labelled, unlabeled_images(args.unlabeled, data.train, rest),
                                weak=build_transforms(image_size, train=True, augment="basic", flip=flip),
                                strong=strong_transforms(image_size, flip=flip) if semi == "fixmatch" else None,
                                mu=args.mu)
    collate = mixing_collate(len(data.class_names), args.cutmix, args.mixup)
    top5 = ("val/top5",) if len(data.class_names) > 5 else ()  # with 5 classes or fewer it is 100% by definition
    log_keys = ("train/loss", "val/loss", "val/top1", *top5) + (("train/mask_rate",) if semi else ())
    return TrainPlan(config, train_set, data.val, monitor="val/top1", log_keys=log_keys, collate_fn=collate,
                     mixing=collate is not None,
                     data={"source": data.source, "path": args.data, "train": len(train_set), "val": len(data.val),
                           **({"test": len(data.test)} if data.test is not None else {}),
                           **({"split": data.split} if data.split else {}),
                           "labelled": len(labelled), "labels_per_class": getattr(args, "labels_per_class", None),
                           "unlabeled": getattr(args, "unlabeled", None), "augment": args.augment,
                           "cutmix": args.cutmix, "mixup": args.mixup},
                     hparams=extra_hparams or {},
                     metadata={"class_names": json.dumps(data.class_names), "image_size": str(image_size)})


def _finish(result: FitResult, trained, batch_size: int, plan: TrainPlan) -> None:
    """The confusion matrix and per-class accuracy of the last validation, beside the run's other records."""
    from backbonekit.training.plots import plot_confusion_matrix

    class_names = plan.config["class_names"]
    task = result.trainer.lightning_module
    confusion = getattr(task, "last_confusion", None)
    if confusion is not None:
        plot_confusion_matrix(confusion.numpy(), class_names, result.run_dir / "confusion_matrix.png",
                              title="confusion matrix (last validation)")
    per_class = getattr(task, "last_per_class", None)
    summary_path = result.run_dir / "metrics.json"
    if per_class is not None and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary["final_per_class_top1"] = dict(zip(class_names, per_class.tolist()))
        summary_path.write_text(json.dumps(summary, indent=2))
    print(f"results in {result.run_dir}{os.sep}", file=sys.stderr)
