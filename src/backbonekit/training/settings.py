"""Typed training settings, written once for every task.

- ``OptimSettings``: how the weights are updated (optimiser, learning rates, schedule with warm-up, epochs,
  freezing). Every task's configuration embeds one (``cfg.optim``), so a trained checkpoint records it and the one
  ``configure_optimizers`` (``training.optim.Optimises``) reads it.
- ``TrainSettings``: those, plus everything else a ``train TASK`` command shares (batch size, precision, devices,
  EMA, bad images, image size, seed, run folder, loggers …) and the task's own options by their CLI names
  (``options``: data, model, augment …). The command line makes one from its arguments at the edge
  (``TrainSettings.from_args``), ``backbonekit.api.train`` from keywords through the same parser; the shared layer
  (run record, preflight, train routine, engine) reads nothing else.

A checkpoint's configuration stays flat (``lr`` beside ``model``): ``flat_config`` writes it, ``nest_optim`` reads it
back, including the keys older checkpoints used (``frozen_bn``, an absolute ``backbone_lr``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from backbonekit.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "plateau", "step", "none")


@dataclass
class OptimSettings:
    optimizer: str = "adamw"               # sgd is Nesterov with ``momentum``
    lr: float | None = 1e-3                # the head's; None (classify's CLI): 0.1 for sgd, 1e-3 for adamw
    backbone_lr_mult: float = 1.0          # fine-tuning: the backbone's lr = lr × this
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "cosine"              # cosine | plateau | step | none (training.optim.build_schedule)
    warmup_epochs: float | None = 1.0      # None: the task's own rule (sequence: the official 20 of 170, scaled)
    step_size: int = 30                    # step without lr_steps: ×0.1 every step_size epochs
    lr_steps: list[float] | None = None    # step: the epochs where the lr is multiplied by 0.1
    plateau_patience: int = 3
    epochs: int = 10
    freeze_backbone: bool = False          # train everything but the backbone
    freeze_bn: bool = False                # keep the backbone's BatchNorm as loaded

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")


OPTIM_FIELDS = tuple(f.name for f in fields(OptimSettings))


@dataclass
class TrainSettings(OptimSettings):
    """Every setting the ``train TASK`` commands share, under their CLI names (``--batch-size`` → ``batch_size``)."""
    clip_grad: float = 0.0                 # gradient-norm clipping; 0: off
    backbone_lr: float | None = None       # the old absolute spelling of backbone_lr_mult (read with a warning)
    image_size: list[int] | None = None    # one size or H W; None: the task's or model's default
    skip_bad_images: bool = False
    batch_size: str = "32"                 # a number or "auto"
    max_memory: str | None = None
    memory_fraction: float = 0.6
    precision: str = "32"                  # Lightning's: 32, bf16-mixed, 16-mixed
    devices: str = "1"
    accelerator: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    workers: int = 0
    threads: int | None = None
    deterministic: bool = False
    compile: bool = False
    ema: float | None = None
    out: str = "runs"
    name: str | None = None
    exist_ok: bool = False
    seed: int = 0
    resume: str | None = None
    config: str | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    progress: str = "auto"
    logger: list[str] = field(default_factory=lambda: ["csv"])
    mlflow_uri: str | None = None
    options: dict[str, Any] = field(default_factory=dict)   # the task's own settings (data, model, augment …)
    explicit: set[str] = field(default_factory=set)         # the settings typed (or in --config): --resume checks them
    # The command's settings in its own order (``momentum`` is no flag; ``backbone_lr`` only sequence's old one):
    # what the run record writes, so that a run.yaml given as --config names only options of its command.
    # None: every field, then the options.
    present: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_args(cls, args) -> "TrainSettings":
        """From a parsed command line (or any object whose attributes are the settings): the shared ones become
        fields, the task's own go to ``options``; argparse's bookkeeping (``func``, the command words) is left out."""
        values = {k: v for k, v in vars(args).items() if k not in _BOOKKEEPING}
        explicit = set(values.pop("_explicit", ()) or ()) - set(_BOOKKEEPING)
        own = {k: v for k, v in values.items() if k in _FIELDS}
        return cls(**own, options={k: v for k, v in values.items() if k not in _FIELDS}, explicit=explicit,
                   present=tuple(values))

    def __getattr__(self, name: str):
        # Only reached for names that are not fields: a task's own option, read as the command reads it.
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"no setting {name!r}")

    def __setattr__(self, name: str, value) -> None:
        # A task's own option is set where it is read from (a resumed run restores recorded values).
        if name in _FIELDS or name in _OWN:
            object.__setattr__(self, name, value)
        else:
            self.options[name] = value

    def __copy__(self) -> "TrainSettings":
        """A copy whose options change apart from these (a noisy-student generation's)."""
        return replace(self, options=dict(self.options), explicit=set(self.explicit))

    def items(self) -> dict[str, Any]:
        """Every setting by its CLI name, the task's own included (what the run record writes)."""
        names = [f.name for f in fields(self) if f.name in _FIELDS] if self.present is None else self.present
        values = {k: getattr(self, k) if k in _FIELDS else self.options.get(k) for k in names}
        return {**values, **{k: v for k, v in self.options.items() if k not in values}}

    def optim(self, **overrides) -> OptimSettings:
        """The optimiser settings these make, ``overrides`` (a task's resolved lr) applied; an old absolute
        ``backbone_lr`` becomes the multiplier it stands for."""
        values = {name: getattr(self, name) for name in OPTIM_FIELDS}
        if self.backbone_lr is not None:
            values["backbone_lr_mult"] = self.backbone_lr / (overrides.get("lr") or self.lr)
        return OptimSettings(**{**values, **overrides})

    def optim_config(self, **overrides) -> dict:
        """``optim(**overrides)`` as the flat keywords a task configuration takes."""
        return asdict(self.optim(**overrides))

    def gradient_clip(self) -> float | None:
        return self.clip_grad if self.clip_grad and self.clip_grad > 0 else None

    def engine_options(self) -> dict:
        """``EngineConfig`` keywords."""
        devices = int(self.devices) if str(self.devices).isdigit() else self.devices
        return dict(out=self.out, name=self.name, resume=self.resume, precision=self.precision, devices=devices,
                    accelerator=self.accelerator, strategy=self.strategy, num_nodes=self.num_nodes,
                    deterministic=self.deterministic, ema_decay=self.ema, compile=self.compile,
                    limit_train_batches=self.limit_train_batches, limit_val_batches=self.limit_val_batches,
                    progress={"auto": None, "bar": True, "lines": False}[self.progress],
                    loggers=tuple(self.logger), mlflow_uri=self.mlflow_uri)


_OWN = ("options", "explicit", "present")
_FIELDS = frozenset(f.name for f in fields(TrainSettings)) - set(_OWN)
_BOOKKEEPING = ("func", "command", "task", "dataset")


def nest_optim(config: dict, defaults: OptimSettings) -> dict:
    """A task configuration as keywords (a checkpoint's flat one, or one already holding ``optim``) → the same with
    the optimiser settings gathered into ``optim`` (``defaults``: the task's, for those not given)."""
    config = dict(config)
    optim = config.pop("optim", None)
    if "frozen_bn" in config:
        config.setdefault("freeze_bn", config.pop("frozen_bn"))
    if "backbone_lr" in config:  # absolute, as sequence checkpoints recorded it
        old, lr = config.pop("backbone_lr"), config.get("lr", defaults.lr)
        config.setdefault("backbone_lr_mult", old / lr)
    given = {k: config.pop(k) for k in OPTIM_FIELDS if k in config}
    base = optim if isinstance(optim, OptimSettings) else replace(defaults, **(optim or {}))
    config["optim"] = replace(base, **given)
    return config


def flat_config(cfg) -> dict:
    """A task configuration (a dataclass embedding ``optim``) as the flat, plain dict a checkpoint records."""
    values = asdict(cfg)
    optim = values.pop("optim", None) or {}
    return {**values, **optim}
