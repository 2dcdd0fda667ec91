"""``train noisy-student`` (Xie et al. 2020): a teacher, not noised, labels the unlabelled images (hard or soft
labels, a confidence filter, classes balanced by duplicating or dropping images); a noised student (RandAugment,
dropout, stochastic depth) learns from the labelled and pseudo-labelled images together; the student becomes the
teacher, for K generations.

``runs/noisy-student/<name>/gen0 … genK`` are each a ``train classify`` run folder (gen0 only when the first
teacher is trained here, from ``--teacher-model``), with ``pseudo_labels.json``; ``results.csv`` and ``metrics.json``
beside them hold each generation's validation top-1. Running the same command again reuses finished generations and
resumes an interrupted one from its ``last.ckpt``.
"""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from backbonekit.classification.data import ClassificationData, build_eval_transform
from backbonekit.classification.semi_data import PseudoLabeled, RawImages, SoftTargets, unlabeled_images
from backbonekit.classification.task import load
from backbonekit.classification.train import _train, labelled_split, load_data
from backbonekit.errors import ConfigError
from backbonekit.models.registry import require_kind
from backbonekit.training.autobatch import batch_size_scope
from backbonekit.training.preflight import check_train_settings
from backbonekit.training.run_record import (check_run_name, differing, new_run_folder, read_record, replacing,
                                             settings_of, write_record)
from backbonekit.training.settings import TrainSettings

RUN_TASK = "noisy-student"
TABLE = ("generation", "model", "role", "val_top1", "pseudo_labelled", "pseudo_acc")


def train_noisy_student(args: TrainSettings) -> int:
    students = [s.strip() for s in args.students.split(",") if s.strip()]
    _check(args, students)
    check_train_settings(args, "train noisy-student", task="classify")  # its generations are classifiers
    if args.name is not None:
        check_run_name(args.name)
    if args.name and args.exist_ok:  # the old folder comes back unless a generation of the new one saved a checkpoint
        with replacing(Path(args.out) / RUN_TASK / args.name, saved=lambda r: any(r.glob("gen*/last.ckpt"))):
            return _generations(args, students)
    return _generations(args, students)


def _generations(args: TrainSettings, students: list[str]) -> int:
    root = _root_folder(args)
    name = root.name
    rows: list[dict] = []
    if args.teacher:
        teacher = Path(args.teacher)
        rows.append({"generation": 0, "model": load(teacher).cfg.model, "role": f"teacher ({teacher})",
                     "val_top1": _val_top1(args, teacher), "pseudo_labelled": "", "pseudo_acc": ""})
    else:
        row, code = _generation(args, name, 0, args.teacher_model, teacher=None)
        if code:
            return code
        rows.append(row)
        teacher = root / "gen0" / "best.safetensors"
    for g in range(1, args.iterations + 1):
        row, code = _generation(args, name, g, students[min(g, len(students)) - 1], teacher=teacher)
        if code:
            return code
        rows.append(row)
        teacher = root / f"gen{g}" / "best.safetensors"
    _write_table(root, rows)
    return 0


def _root_folder(args: TrainSettings) -> Path:
    """A new numbered folder, or the named one: continued when its record matches these settings (finished
    generations reused), refused when it does not, replaced with --exist-ok."""
    root = Path(args.out) / RUN_TASK / args.name if args.name else None
    record = read_record(root) if root is not None and root.is_dir() else None
    if record is not None and not args.exist_ok:
        if record.get("command") != "train noisy-student":
            raise ConfigError(f"{root} is a `{record.get('command')}` run: choose another --name")
        changed = differing(args.items(), record["settings"], set(record["settings"]) | set(settings_of(args)))
        if changed:
            raise ConfigError(f"{root} was trained with other settings: {changed}. Run the same command to "
                              "continue it, or choose another --name (--exist-ok replaces it)")
        print(f"continuing {root}: finished generations are reused")
        return root
    if root is None or root.exists():
        root = new_run_folder(args.out, RUN_TASK, args.name, args.exist_ok)
    write_record(root, "train noisy-student", settings_of(args))
    return root


def _check(args: TrainSettings, students: list[str]) -> None:
    if args.model is not None:
        raise ConfigError("noisy-student takes its models as --teacher-model (generation 0) and --students "
                          "(generations 1, 2, …), not --model")
    if bool(args.teacher) == bool(args.teacher_model):
        raise ConfigError("give the first teacher as --teacher CKPT or --teacher-model NAME (one of them)")
    if args.iterations < 1:
        raise ConfigError(f"--iterations must be at least 1, got {args.iterations}")
    if not students:
        raise ConfigError("--students needs at least one model name")
    if args.resume:
        raise ConfigError("noisy-student resumes by itself: run the same command (same --name) again")
    if args.soft and (args.cutmix or args.mixup):
        raise ConfigError("--soft does not combine with --cutmix/--mixup")
    if args.teacher and not Path(args.teacher).is_file():
        raise ConfigError(f"--teacher {args.teacher}: no such file")
    for model in students:
        require_kind(model, "classify", "--students", "train noisy-student")  # before anything trains


def _generation(args: TrainSettings, name: str, g: int, model: str, teacher: Path | None) -> tuple[dict, int]:
    run = Path(args.out) / RUN_TASK / name / f"gen{g}"
    row = {"generation": g, "model": model, "role": "teacher" if teacher is None else "student"}
    gen = copy.copy(args)
    gen.model, gen.name, gen.resume = model, f"{name}/gen{g}", None
    gen.teacher = gen.unlabeled = None  # here the teacher labels images; `train classify` would distil from it
    if _finished(run):
        print(f"generation {g}: reusing {run / 'best.safetensors'}")
    else:
        if (run / "last.ckpt").is_file():
            gen.resume = str(run / "last.ckpt")
            print(f"generation {g}: resuming {gen.resume}")
        print(f"generation {g}: {model}" + (f", pseudo-labels from {teacher}" if teacher else ", labelled data"))
        extra = None if teacher is None else (lambda data, size: _pseudo_set(args, gen, data, teacher, run))
        wrap = SoftTargets if args.soft and teacher is not None else None  # one-hot labels beside soft ones
        with batch_size_scope():
            result = _train(gen, extra_train=extra, labelled_wrap=wrap, run_task=RUN_TASK,
                            extra_hparams={"noisy_student": {"generation": g, "teacher": str(teacher) if teacher
                                                             else None, "soft": args.soft,
                                                             "threshold": args.threshold}})
        if result.exit_code:
            return row, result.exit_code
    metrics = json.loads((run / "metrics.json").read_text())
    pseudo = json.loads((run / "pseudo_labels.json").read_text()) if (run / "pseudo_labels.json").is_file() else {}
    row.update(val_top1=metrics["best"]["val/top1"], pseudo_labelled=pseudo.get("used", ""),
               pseudo_acc=pseudo.get("accuracy", ""))
    return row, 0


def _finished(run: Path) -> bool:
    if not (run / "best.safetensors").is_file() or not (run / "metrics.json").is_file():
        return False
    return not json.loads((run / "metrics.json").read_text()).get("interrupted", True)


def _pseudo_set(args: TrainSettings, gen: TrainSettings, data: ClassificationData, teacher: Path,
                run: Path) -> PseudoLabeled:
    """The unlabelled images the teacher labels confidently, balanced across classes, with the student's
    training transform."""
    _, rest = labelled_split(gen, data)
    images = unlabeled_images(args.unlabeled, data.train, rest)
    indices, targets, stats = pseudo_label(teacher, images, len(data.class_names), threshold=args.threshold,
                                           soft=args.soft)
    if not indices:
        raise ConfigError(f"--threshold {args.threshold}: the teacher {teacher} is confident on none of the "
                          f"{len(images)} unlabelled images")
    run.mkdir(parents=True, exist_ok=True)
    (run / "pseudo_labels.json").write_text(json.dumps(stats, indent=2))
    print(f"pseudo-labels: {stats['confident']}/{stats['unlabelled']} confident, {stats['used']} after balancing"
          + (f", accuracy {stats['accuracy']:.2f}%" if stats.get("accuracy") is not None else ""))
    return PseudoLabeled(images, indices, targets, data.train.transform)


@torch.inference_mode()
def pseudo_label(teacher_path: Path, images: RawImages, num_classes: int, *, threshold: float, soft: bool,
                 batch_size: int = 128) -> tuple[list[int], list, dict]:
    """The teacher (eval mode, centre crop: no noise) on every unlabelled image → (image indices, targets, stats).
    Kept: probability ≥ threshold. Balanced: each class (by argmax) brought to the median count of the classes
    present, keeping its most confident images or repeating them."""
    teacher = load(teacher_path)
    if teacher.cfg.num_classes != num_classes:
        raise ConfigError(f"{teacher_path}: the teacher has {teacher.cfg.num_classes} classes, the data has "
                          f"{num_classes}")
    transform = build_eval_transform(teacher.cfg.image_size)
    loader = DataLoader(range(len(images)), batch_size=batch_size,
                        collate_fn=lambda idx: torch.stack([transform(images.raw(i)[0]) for i in idx]))
    probs = torch.cat([teacher(x).float().softmax(-1) for x in loader])
    confidence, label = probs.max(-1)
    kept = torch.nonzero(confidence >= threshold).flatten().numpy()
    per_class = [kept[label[kept].numpy() == c] for c in range(num_classes)]
    per_class = [idx[np.argsort(-confidence[idx].numpy(), kind="stable")] for idx in per_class]
    present = [len(idx) for idx in per_class if len(idx)]
    target = int(np.median(present)) if present else 0
    chosen = np.concatenate([np.resize(idx, target) for idx in per_class if len(idx)] or [np.zeros(0, int)])
    indices = chosen.astype(int).tolist()
    targets = [probs[i].clone() for i in indices] if soft else [int(label[i]) for i in indices]
    true = np.asarray(images.labels)
    known = kept[true[kept] >= 0] if len(kept) else kept
    stats = {"unlabelled": len(images), "confident": int(len(kept)), "used": len(indices), "per_class_target": target,
             "confident_per_class": [int(len(idx)) for idx in per_class],
             "accuracy": 100 * float((label[known].numpy() == true[known]).mean()) if len(known) else None}
    return indices, targets, stats


def _val_top1(args: TrainSettings, checkpoint: Path) -> float:
    """Validation top-1 of a given first teacher, on this data's split at the teacher's resolution."""
    teacher = load(checkpoint)
    gen = copy.copy(args)
    gen.augment = "none"
    data = load_data(gen, teacher.cfg.image_size)
    if len(data.class_names) != teacher.cfg.num_classes:
        raise ConfigError(f"--teacher {checkpoint}: the teacher has {teacher.cfg.num_classes} classes, the data has "
                          f"{len(data.class_names)}")
    correct = 0
    with torch.inference_mode():
        for x, y in DataLoader(data.val, batch_size=128):
            correct += int((teacher(x).argmax(-1) == y).sum())
    return 100 * correct / len(data.val)


def _write_table(root: Path, rows: list[dict]) -> None:
    with open(root / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE)
        writer.writeheader()
        writer.writerows(rows)
    (root / "metrics.json").write_text(json.dumps({"unit": "percent", "generations": rows}, indent=2))
    print(f"\n{'gen':>3}  {'model':<16} {'role':<10} {'val top-1 %':>11}  {'pseudo':>6}  {'pseudo acc %':>12}")
    for r in rows:
        acc = f"{r['pseudo_acc']:.2f}" if isinstance(r["pseudo_acc"], float) else "-"
        role = r["role"] if len(r["role"]) <= 10 else "teacher"
        print(f"{r['generation']:>3}  {r['model']:<16} {role:<10} {r['val_top1']:>11.2f}  "
              f"{str(r['pseudo_labelled'] or '-'):>6}  {acc:>12}")
    print(f"results in {root}/")
