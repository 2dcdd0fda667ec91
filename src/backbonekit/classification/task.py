"""The classification LightningModule: a backbonekit model, cross-entropy (soft targets for CutMix/MixUp),
top-1/top-5/per-class accuracy and a confusion matrix, parameter groups for transfer learning; knowledge
distillation from a frozen teacher and semi-supervised losses (FixMatch, pseudo-labels) on unlabelled batches.

Images enter as uint8 (or 0–1 floats, after mixing) and are normalised inside with the model's own statistics;
``load(path)`` rebuilds a trained task from ``best.ckpt``/``last.ckpt``/``best.safetensors``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchmetrics

from backbonekit.errors import ConfigError
from backbonekit.models.registry import create_model
from backbonekit.nn.batchnorm import hold_batch_norm, running_stats_frozen
from backbonekit.nn.normalize import ImageNormalize
from backbonekit.training.frozen_parts import HoldsFrozenParts
from backbonekit.training.optim import Optimises
from backbonekit.training.settings import OptimSettings, flat_config, nest_optim
from backbonekit.training.task_io import load_task

TASK = "classify"
DEFAULT_OPTIM = OptimSettings(weight_decay=0.05)  # they converge on short runs
AUX_LOSS_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers, as in the paper
DISTILL_LOSSES = ("kl", "mse")
SEMI_METHODS = ("pseudo-label", "fixmatch")


@dataclass
class ClassifyConfig:
    task: str = TASK
    model: str = "resnet18"
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    pretrained: str | None = None
    image_size: int = 224
    stem: str = "imagenet"  # "small": the first downsampling left out (28-32 px images: Fashion-MNIST, CIFAR)
    # The input statistics (0-1 scale, per channel) when not the model's own: --normalize data measures them on the
    # training images.
    mean: list[float] | None = None
    std: list[float] | None = None
    # The command's defaults (commands.py): AdamW 1e-3, weight decay 0.05, cosine after 1 epoch of warm-up.
    optim: OptimSettings = field(default_factory=lambda: replace(DEFAULT_OPTIM))
    label_smoothing: float = 0.0
    drop_rate: float | None = None
    drop_path_rate: float | None = None
    # Knowledge distillation (Hinton et al. 2015): a start file like ``pretrained``, not needed to rebuild the model.
    teacher: str | None = None
    distill_alpha: float = 0.9
    distill_temperature: float = 4.0
    distill_loss: str = "kl"
    # Semi-supervised: batches then carry mu × B unlabelled images (``semi_data.SemiDataset``).
    semi: str | None = None
    threshold: float = 0.95
    mu: int = 7
    lambda_u: float = 1.0
    unsup_warmup: float = 0.0  # share of the training steps over which lambda_u ramps up linearly from 0


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0,
                      kind: str = "kl") -> torch.Tensor:
    """``kl``: T²·KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch (``batchmean``: the sum over
    classes, divided by N only). The T² keeps its gradient on the same scale as the hard-label term's for any T
    (without it the gradient shrinks as 1/T²). ``mse``: mean squared difference of the logits (logit matching)."""
    if kind == "mse":
        return F.mse_loss(student.float(), teacher.float())
    t = temperature
    return t * t * F.kl_div(F.log_softmax(student.float() / t, -1), F.log_softmax(teacher.float() / t, -1),
                            log_target=True, reduction="batchmean")


class ClassificationTask(Optimises, HoldsFrozenParts, pl.LightningModule):
    def __init__(self, **config):
        super().__init__()
        self.cfg = ClassifyConfig(**nest_optim(config, DEFAULT_OPTIM))
        self.save_hyperparameters(_plain_config(self.cfg))  # plain types: the checkpoint loads with weights_only
        overrides = {k: v for k, v in (("drop_rate", self.cfg.drop_rate), ("drop_path_rate", self.cfg.drop_path_rate))
                     if v is not None}
        if self.cfg.stem != "imagenet":  # only then: the models of other runs keep the options they recorded
            overrides["stem"] = self.cfg.stem
        self._check_input_options()
        self.model = create_model(self.cfg.model, num_classes=self.cfg.num_classes, pretrained=self.cfg.pretrained,
                                  **overrides)
        if self.cfg.mean is not None:  # recorded in the model's configuration too, so its safetensors say them
            self.model.pretrained_cfg = {**self.model.pretrained_cfg, "mean": tuple(self.cfg.mean),
                                         "std": tuple(self.cfg.std)}
        self.normalize = ImageNormalize.from_cfg(self.model.pretrained_cfg)
        if self.cfg.optim.freeze_backbone:
            for p in self.backbone_parameters():
                p.requires_grad_(False)
        n = self.cfg.num_classes
        self.val_top1 = torchmetrics.Accuracy("multiclass", num_classes=n)
        self.val_top5 = torchmetrics.Accuracy("multiclass", num_classes=n, top_k=min(5, n))
        self.val_per_class = torchmetrics.Accuracy("multiclass", num_classes=n, average=None)
        self.val_confusion = torchmetrics.ConfusionMatrix("multiclass", num_classes=n)
        self._check_data_efficient_options()
        # The teacher is held outside the module tree (a plain list): not in the state dict or checkpoint, not moved
        # to train mode by Lightning, not wrapped by DDP. Frozen, eval mode, run under no_grad.
        self._teacher: list[nn.Module] = [_load_teacher(self.cfg.teacher, n)] if self.cfg.teacher else []
        self._semi_stats: dict = {}

    def _check_input_options(self) -> None:
        from backbonekit.models.base import STEMS

        cfg = self.cfg
        if cfg.stem not in STEMS:
            raise ConfigError(f"--stem must be one of {', '.join(STEMS)}, got {cfg.stem!r}")
        if (cfg.mean is None) != (cfg.std is None):
            raise ConfigError("give both mean and std, or neither")
        if cfg.mean is not None and (len(cfg.mean) != len(cfg.std) or min(cfg.std) <= 0):
            raise ConfigError(f"mean {cfg.mean} and std {cfg.std}: one value a channel each, std > 0")

    def _check_data_efficient_options(self) -> None:
        cfg = self.cfg
        if cfg.distill_loss not in DISTILL_LOSSES:
            raise ConfigError(f"--distill-loss must be one of {', '.join(DISTILL_LOSSES)}, got {cfg.distill_loss!r}")
        if not 0 <= cfg.distill_alpha <= 1:
            raise ConfigError(f"--distill-alpha must be between 0 and 1, got {cfg.distill_alpha}")
        if cfg.distill_temperature <= 0:
            raise ConfigError(f"--distill-temperature must be > 0, got {cfg.distill_temperature}")
        if cfg.semi is not None and cfg.semi not in SEMI_METHODS:
            raise ConfigError(f"--semi must be one of {', '.join(SEMI_METHODS)}, got {cfg.semi!r}")
        if not 0 <= cfg.threshold <= 1:
            raise ConfigError(f"--threshold must be between 0 and 1, got {cfg.threshold}")

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)

    # ------------------------------------------------------------------------------------------ model parts
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for uint8 (or 0–1 float) images; in training, what the model returns (GoogLeNet: with aux logits)."""
        return self.model(self.normalize(images))

    def example_batch(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """A batch shaped like the training data's (for ``--batch-size auto``)."""
        size = self.cfg.image_size

        def images(*lead):
            return torch.randint(0, 256, (*lead, 3, size, size), dtype=torch.uint8, device=device)
        x, y = images(batch_size), torch.randint(0, self.cfg.num_classes, (batch_size,), device=device)
        if self.cfg.semi is None:
            return x, y
        batch = {"x": x, "y": y, "weak": images(batch_size, self.cfg.mu),
                 "true": torch.full((batch_size, self.cfg.mu), -1, device=device)}
        if self.cfg.semi == "fixmatch":
            batch["strong"] = images(batch_size, self.cfg.mu)
        return batch

    def training_loss(self, batch) -> torch.Tensor:
        if isinstance(batch, dict):
            return self._semi_loss(batch)
        x, y = batch
        return self._labelled_loss(x, y, self(x))

    def _labelled_loss(self, x: torch.Tensor, y: torch.Tensor, out) -> torch.Tensor:
        """Cross-entropy on the labels (soft after CutMix/MixUp), mixed with distillation when there is a teacher."""
        out, aux = _split_aux(out)
        smoothing = self.cfg.label_smoothing
        loss = F.cross_entropy(out, y, label_smoothing=smoothing)  # y may be soft (N×C)
        if self.teacher is not None and self.cfg.distill_alpha > 0:
            alpha = self.cfg.distill_alpha  # the teacher sees the same (possibly mixed) images
            soft = distillation_loss(out, self._teacher_logits(x), self.cfg.distill_temperature, self.cfg.distill_loss)
            loss = (1 - alpha) * loss + alpha * soft
        for logits in aux:  # auxiliary classifiers (GoogLeNet in training): extra gradient, weight 0.3
            if logits is not None:
                loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(logits, y, label_smoothing=smoothing)
        return loss

    @torch.no_grad()
    def _teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher
        if next(teacher.parameters()).device != images.device:
            teacher.to(images.device)
        return teacher(images).float()

    def _semi_loss(self, batch: dict) -> torch.Tensor:
        """Labelled loss + lambda_u × cross-entropy of confident pseudo-labels. FixMatch (Sohn et al. 2020): the
        label is the argmax on the weak view where its probability ≥ threshold, learnt on the strong view.
        Pseudo-label (Lee 2013): the same hard label learnt on the weak view itself, or the teacher's if any.
        Labelled and weak images go through the model as one batch, the strong views as a second one."""
        x, y = batch["x"], batch["y"]
        weak, true = batch["weak"].flatten(0, 1), batch["true"].flatten()
        logits, aux = _split_aux(self(torch.cat([x, weak])))
        n, m = len(x), len(weak)
        labelled_aux = [a[:n] if a is not None else None for a in aux]
        loss = self._labelled_loss(x, y, (logits[:n], *labelled_aux) if aux else logits[:n])
        weak_logits = logits[n:n + m]
        strong_logits = None
        if "strong" in batch:
            # Strong views (RandAugment + Cutout) are normalised with their own batch statistics but kept out of the
            # running averages: mixed in, they shift the inference statistics away from clean images (on the digits
            # benchmark, eval-mode top-1 93.3 % vs 95.6 % once the statistics were re-estimated on clean images).
            with running_stats_frozen(self.model):
                strong_logits, _ = _split_aux(self(batch["strong"].flatten(0, 1)))
        with torch.no_grad():
            use_teacher = self.cfg.semi == "pseudo-label" and self.teacher is not None
            source = self._teacher_logits(weak) if use_teacher else weak_logits.detach().float()
            confidence, pseudo = source.softmax(-1).max(-1)
            mask = (confidence >= self.cfg.threshold).float()
        learner = strong_logits if strong_logits is not None else weak_logits
        unlabelled = (F.cross_entropy(learner, pseudo, reduction="none") * mask).mean()
        known = (true >= 0) & mask.bool()
        self._semi_stats = {"mask_rate": mask.mean().detach(), "unlabelled_loss": unlabelled.detach()}
        if known.any():
            self._semi_stats["pseudo_acc"] = ((pseudo[known] == true[known]).float().mean(), int(known.sum()))
        return loss + self.cfg.lambda_u * self._unsup_ramp() * unlabelled

    def _unsup_ramp(self) -> float:
        """0 → 1 over the first ``unsup_warmup`` of training (Lee 2013's α(t); USB's ``unsup_warmup``): early pseudo-
        labels of a model that has barely seen its labels would otherwise be learnt as if they were true."""
        if self.cfg.unsup_warmup <= 0 or self._trainer is None:
            return 1.0
        total = max(1, int(self.trainer.estimated_stepping_batches * self.cfg.unsup_warmup))
        return min(1.0, self.global_step / total)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.model.get_classifier().parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.model.parameters() if id(p) not in head]

    def hold_frozen_parts(self) -> None:
        if self.cfg.optim.freeze_backbone:
            # Feature extraction: the backbone's BatchNorm statistics stay those of the pretrained weights.
            self.model.eval()
            self.model.get_classifier().train()
        elif self.cfg.optim.freeze_bn:
            hold_batch_norm(self.model)

    # ------------------------------------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx):
        loss = self.training_loss(batch)
        n = batch["x"].shape[0] if isinstance(batch, dict) else batch[0].shape[0]
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        stats, self._semi_stats = self._semi_stats, {}
        if "mask_rate" in stats:  # share of the unlabelled images whose pseudo-label passed the threshold
            m = batch["weak"].shape[0] * batch["weak"].shape[1]
            self.log("train/mask_rate", stats["mask_rate"], on_step=False, on_epoch=True, sync_dist=True, batch_size=m)
            self.log("train/unlabelled_loss", stats["unlabelled_loss"], on_step=False, on_epoch=True,
                     sync_dist=True, batch_size=m)
        if "pseudo_acc" in stats:  # accuracy of the pseudo-labels used, where the true labels are known
            acc, used = stats["pseudo_acc"]
            self.log("train/pseudo_acc", 100 * acc, on_step=False, on_epoch=True, sync_dist=True, batch_size=used)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        for metric in (self.val_top1, self.val_top5, self.val_per_class, self.val_confusion):
            metric.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        # Scores in percent, as everywhere (console, results.csv, metrics.json, plots). compute() synchronises
        # the DDP processes (a collective: every process runs it); per-class and confusion are kept for the plots.
        self.log("val/top1", 100 * self.val_top1.compute(), prog_bar=True)
        if self.cfg.num_classes > 5:  # with 5 classes or fewer top-5 is 100% by definition
            self.log("val/top5", 100 * self.val_top5.compute())
        self.last_per_class = 100 * self.val_per_class.compute().cpu()
        self.last_confusion = self.val_confusion.compute().cpu()
        for metric in (self.val_top1, self.val_top5, self.val_per_class, self.val_confusion):
            metric.reset()

    # ------------------------------------------------------------------------------------------- optimiser
    def optimizer_parts(self):
        return [(self.backbone_parameters(), self.cfg.optim.backbone_lr_mult), (self.head_parameters(), 1.0)]


def _plain_config(cfg: ClassifyConfig) -> dict:
    d = flat_config(cfg)
    d["class_names"] = list(cfg.class_names)
    return d


def _split_aux(out) -> tuple[torch.Tensor, list]:
    """(main logits, auxiliary logits) of what the model returned in training."""
    if isinstance(out, tuple):
        main, *aux = out
        return main, aux
    return out, []


def _load_teacher(path: str, num_classes: int) -> ClassificationTask:
    teacher = load(path)
    if teacher.cfg.num_classes != num_classes:
        raise ConfigError(f"--teacher {path}: the teacher has {teacher.cfg.num_classes} classes, the data has "
                          f"{num_classes}")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def load(path: str | Path, fuse: bool = False, read: tuple | None = None) -> ClassificationTask:
    """A trained classifier (eval mode) from a ``train classify`` checkpoint or ``best.safetensors``.
    ``fuse``: BatchNorm folded into the convolutions, for inference."""
    return load_task(path, ClassificationTask, TASK, fuse, read)
