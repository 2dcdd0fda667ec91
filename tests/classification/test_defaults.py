"""`train classify` defaults converge on short runs (AdamW 1e-3, weight decay 0.05, 1 epoch of warm-up: measured on
every README example by benchmarks/readme_classify.py; SGD lr 0.1 without warm-up diverged), and the shipped
classify recipes set every one of those themselves, so their README figures do not move with the defaults."""
import pytest

from backbonekit.cli import build_parser
from backbonekit.io.config_file import list_recipes

OPTIMISATION = ("optimizer", "lr", "weight_decay", "warmup_epochs")


@pytest.mark.parametrize("command", ["classify", "noisy-student"])
def test_the_defaults_are_the_measured_ones(command):
    args = build_parser().parse_args(["train", command, "--data", "digits"]
                                     + (["--unlabeled", "digits-rest"] if command == "noisy-student" else []))
    assert (args.optimizer, args.lr, args.weight_decay, args.scheduler, args.warmup_epochs) == \
        ("adamw", None, 0.05, "cosine", 1.0)  # --lr None: 1e-3 for adamw (0.1 if --optimizer sgd)


def test_the_task_config_has_the_same_defaults():
    from backbonekit.classification.task import ClassifyConfig

    cfg = ClassifyConfig().optim
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.warmup_epochs) == ("adamw", 1e-3, 0.05, 1.0)


def test_classify_recipes_set_their_own_optimisation():
    recipes = {name: r for name, r in list_recipes().items()
               if r["command"] in ("train classify", "train noisy-student")}
    assert len(recipes) == 12  # cifar10 ×2, digits ×3, fashion-mnist ×7
    for name, recipe in recipes.items():
        missing = [k for k in OPTIMISATION if k not in recipe["settings"]]
        assert not missing, f"recipe {name} leaves {missing} to the defaults"
