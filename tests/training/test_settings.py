"""Typed settings written once: the optimiser block lives in ``OptimSettings`` alone, one ``configure_optimizers``
serves every task, the shared layer names no task, old keys are read with a warning."""
import ast
import copy
import dataclasses
from pathlib import Path

import pytest

from backbonekit.cli import build_parser, parse
from backbonekit.io.config_file import config_tokens, subparser
from backbonekit.training.settings import OPTIM_FIELDS, OptimSettings, TrainSettings, flat_config, nest_optim

SRC = Path(__file__).resolve().parents[2] / "src" / "backbonekit"
TASK_CONFIGS = {"classification/task.py": "ClassifyConfig", "detection/task.py": "DetectConfig",
                "sequence/task.py": "SequenceConfig"}
TASKS = ("classify", "detect", "sequence")


def _fields(path: Path, cls: str) -> list[str]:
    tree = ast.parse(path.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    return [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]


@pytest.mark.parametrize("module", sorted(TASK_CONFIGS))
def test_no_task_config_writes_the_optimiser_fields_again(module):
    names = _fields(SRC / module, TASK_CONFIGS[module])
    assert "optim" in names and not set(names) & set(OPTIM_FIELDS), set(names) & set(OPTIM_FIELDS)


def test_configure_optimizers_is_written_once():
    defined = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
               if any(isinstance(n, ast.FunctionDef) and n.name == "configure_optimizers"
                      for n in ast.walk(ast.parse(p.read_text())))]
    assert defined == ["training/optim.py"]


def _task_names_in(path: Path) -> list[tuple[int, str]]:
    """String literals that are a task's name (docstrings left aside; ``getattr(m, "detect")`` is a method)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    methods = {id(n.args[1]) for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") in
               ("getattr", "hasattr") and len(n.args) > 1}
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in TASKS
            and id(n) not in docs and id(n) not in methods]


@pytest.mark.parametrize("module", sorted(str(p.relative_to(SRC)) for folder in ("training", "tools")
                                          for p in (SRC / folder).glob("*.py")))
def test_the_shared_layer_names_no_task(module):
    assert _task_names_in(SRC / module) == []


def test_settings_from_the_command_line():
    args = parse(["train", "detect", "--data", "d", "--lr", "0.01", "--freeze-bn", "--batch-size", "4"])
    s = TrainSettings.from_args(args)
    assert (s.lr, s.freeze_bn, s.batch_size, s.epochs) == (0.01, True, "4", 50)
    assert s.data == "d" and s.options["model"] == "efficientdet_d0" and "func" not in s.items()
    assert s.explicit == {"data", "lr", "freeze_bn", "batch_size"}
    assert list(s.items())[:2] == ["data", "val_data"]  # the record keeps the command's order
    assert "momentum" not in s.items()  # no flag: a run.yaml given as --config names only options
    optim = s.optim()
    assert isinstance(optim, OptimSettings) and (optim.lr, optim.freeze_bn, optim.epochs) == (0.01, True, 50)
    gen = copy.copy(s)
    gen.model = "efficientdet_d1"
    assert s.model == "efficientdet_d0" and gen.model == "efficientdet_d1"
    with pytest.raises(AttributeError):
        s.no_such_setting


def test_a_checkpoints_flat_config_round_trips_and_old_keys_are_read():
    from backbonekit.sequence.task import DEFAULT_OPTIM, SequenceConfig

    cfg = SequenceConfig(**nest_optim({"backbone": "resnet18", "lr": 2e-3, "backbone_lr": 2e-4, "frozen_bn": True},
                                      DEFAULT_OPTIM))
    assert cfg.optim.backbone_lr_mult == pytest.approx(0.1) and cfg.optim.freeze_bn
    assert cfg.optim.scheduler == "step" and cfg.optim.warmup_epochs is None  # the task's defaults for the rest
    flat = flat_config(cfg)
    assert "optim" not in flat and flat["lr"] == 2e-3 and flat["backbone"] == "resnet18"
    assert SequenceConfig(**nest_optim(flat, DEFAULT_OPTIM)) == cfg
    assert dataclasses.asdict(cfg)["optim"]["lr"] == 2e-3


def test_config_files_read_old_keys_with_a_warning(capsys):
    parser = subparser(build_parser(), ["train", "detect"])
    tokens = config_tokens({"frozen_bn": True, "val_fraction": 0.3, "skip_missing": True, "lr": 0.01,
                            "backbone_lr": 0.001}, parser, "old.yaml")
    assert {"--freeze-bn", "--skip-bad-images"} <= set(tokens)
    assert tokens[tokens.index("--val-ratio") + 1] == "0.3"
    assert tokens[tokens.index("--backbone-lr-mult") + 1] == "0.1"
    err = capsys.readouterr().err
    for old, new in (("frozen_bn", "freeze_bn"), ("val_fraction", "val_ratio"), ("skip_missing", "skip_bad_images"),
                     ("backbone_lr", "backbone_lr_mult")):
        assert f"warning: old.yaml: {old} is an old key, use {new}" in err


def test_the_recipes_use_the_current_keys():
    from backbonekit.io.config_file import OLD_KEYS, list_recipes

    for name, recipe in list_recipes().items():
        assert not set(recipe["settings"]) & set(OLD_KEYS), name
