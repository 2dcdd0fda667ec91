import json

import pytest

from backbonekit.cli import main
from backbonekit.errors import ConfigError
from backbonekit.tools.bench import run_bench


def test_bench_runs_both_models_on_the_same_weights():
    result = run_bench("resnet18", vs="torchvision", batch_size=1, image_size=64, rounds=1, iters=1, warmup=1)
    # Speeds are the benchmark's business (figures, not assertions); what a test can hold is that both computed the
    # same function.
    assert result.max_abs_diff <= 1e-4


def test_bench_train_and_fused_inference():
    timm = pytest.importorskip("timm")  # noqa: F841
    train = run_bench("efficientnet_b0", vs="timm", batch_size=2, image_size=64, train=True, rounds=1, iters=1,
                      warmup=1)
    assert train.mode == "train" and train.max_abs_diff <= 1e-4
    fused = run_bench("resnet18", batch_size=1, image_size=64, fuse=True, channels_last=True, rounds=1, iters=1,
                      warmup=1)
    assert fused.fused and fused.channels_last
    assert fused.max_abs_diff <= 1e-4  # the folded, channels-last model against torchvision's


def test_bench_bad_peer_and_options():
    with pytest.raises(ConfigError, match="--vs must be one of"):
        run_bench("resnet18", vs="keras")
    with pytest.raises(ConfigError, match="torchvision has no model"):
        run_bench("tf_efficientnet_b0", vs="torchvision")
    with pytest.raises(ConfigError, match="cannot be combined"):
        run_bench("resnet18", fuse=True, train=True)


def test_cli_bench_json(capsys):
    assert main(["bench", "resnet18", "--batch-size", "1", "--image-size", "32", "--rounds", "1", "--iters", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "resnet18" and out["max_abs_diff"] <= 1e-4 and {"ratio", "median_ratio"} <= set(out)


def test_cli_unknown_model_is_one_line(capsys):
    assert main(["summary", "resnet5O"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'resnet5O'") and "Traceback" not in err


def test_cli_models_lists_the_families(capsys):
    assert main(["models", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out and "resnet101" in out


def _subcommands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _subcommands(sub, prefix + (name,))


def test_every_subcommand_has_help(capsys):
    from backbonekit.cli import build_parser

    commands = list(_subcommands(build_parser()))
    assert ("train", "sequence") in commands and ("models",) in commands and ("export",) in commands
    for words in commands:
        assert main([*words, "--help"]) == 0, words
        assert "usage: backbonekit " + " ".join(words) in capsys.readouterr().out


def test_models_lists_every_task(capsys):
    """Regression: `models` crashed on detectors (no feature_info)."""
    assert main(["models", "efficientdet_d0"]) == 0
    assert main(["models", "seqfakeformer"]) == 0
    out = capsys.readouterr().out
    assert "efficientdet_d0" in out and "3,880,067" in out and "detect" in out and "sequence" in out
    assert main(["models", "nothing*"]) == 2


def test_models_lists_every_registered_model(capsys):
    from backbonekit.models.registry import list_models

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    missing = [n for n in list_models() if n != "efficientnet_custom" and n not in out]
    assert not missing and "138,357,544" in out  # vgg16's count, from the meta-device build
