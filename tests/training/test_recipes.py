"""Every shipped recipe trains one step on small data in the true format, through the real CLI, and its settings are
what the run records (typed flags overriding it)."""
import pytest
import yaml

from backbonekit.cli import main
from backbonekit.io.config_file import list_recipes

# Small enough for one CPU step; everything else comes from the recipe.
ONE_STEP = ["--epochs", "1", "--limit-train-batches", "1", "--limit-val-batches", "1", "--progress", "lines"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from data_writers import write_cifar10, write_idx

    from backbonekit.detection.synth import synthesize_shapes
    from backbonekit.sequence.synth import synthesize_seqdeepfake

    root = tmp_path_factory.mktemp("recipe_data")
    synthesize_seqdeepfake(root / "seq", "facial_components", num_images=12, seed=0, image_size=64)
    synthesize_shapes(root / "kitti", "kitti", num_images=6, seed=0, image_size=(48, 144))
    return {"seq": root / "seq", "cifar": write_cifar10(root / "cifar-10-batches-py"), "kitti": root / "kitti",
            "fashion": write_idx(root / "fashion-mnist")}


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "classify", "--data", "digits", "--image-size", "16", "--batch-size", "32", *ONE_STEP,
                 "--out", str(out), "--name", "t"]) == 0
    return out / "classify" / "t" / "best.safetensors"


def _extra(name, data, digits_teacher):
    small = {"seq": ["--data", str(data["seq"]), "--image-size", "64", "--batch-size", "2"],
             "cifar": ["--data", str(data["cifar"]), "--batch-size", "4"],
             "kitti": ["--data", str(data["kitti"]), "--image-size", "48", "144", "--batch-size", "2"],
             "fashion": ["--data", str(data["fashion"]), "--batch-size", "8"],
             "digits": ["--batch-size", "16"]}
    key = name.split("-")[0].replace("seqdeepfake", "seq").replace("cifar10", "cifar")
    extra = small[key]
    if name == "digits-distill":
        extra = extra + ["--teacher", str(digits_teacher)]
    if name == "digits-noisy-student":
        extra = extra + ["--threshold", "0"]  # a one-step teacher is confident about nothing
    return extra


def test_every_recipe_the_issue_names_is_shipped():
    assert set(list_recipes()) == {"seqdeepfake-r50", "seqdeepfake-b4", "cifar10-efficientnet-b0", "cifar10-resnet18",
                                   "kitti-efficientdet-d0", "digits-distill", "digits-fixmatch",
                                   "digits-noisy-student", "fashion-mnist-resnet18", "fashion-mnist-resnet50",
                                   "fashion-mnist-seresnet18", "fashion-mnist-efficientnet-b0",
                                   "fashion-mnist-efficientnet-lite0", "fashion-mnist-googlenet",
                                   "fashion-mnist-densenet121"}


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_recipe_trains_one_step_and_is_recorded(name, data, digits_teacher, tmp_path):
    recipe = list_recipes()[name]
    command = recipe["command"].split()
    extra = _extra(name, data, digits_teacher)
    assert main([*command, "--config", f"recipe:{name}", *extra, *ONE_STEP, "--out", str(tmp_path),
                 "--name", "r"]) == 0
    folder = {"train classify": "classify", "train detect": "detect", "train sequence": "sequence",
              "train noisy-student": "noisy-student"}[recipe["command"]]
    settings = yaml.safe_load((tmp_path / folder / "r" / "run.yaml").read_text())["settings"]
    typed = {w[2:].replace("-", "_") for w in [*extra, *ONE_STEP] if w.startswith("--")}
    for key, value in recipe["settings"].items():
        if key not in typed:
            assert settings[key] in (value, [value]), key  # nargs options record a list
    assert settings["epochs"] == 1


def test_recipes_command_lists_and_shows(capsys):
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in list_recipes())
    assert main(["recipes", "seqdeepfake-r50"]) == 0
    shown = capsys.readouterr().out
    assert "72.65" in shown and "backbonekit train sequence --config recipe:seqdeepfake-r50" in shown
    assert main(["recipes", "nope"]) == 2


def test_a_recipe_for_another_command_or_an_unknown_setting_is_refused(tmp_path, capsys):
    assert main(["train", "detect", "--config", "recipe:digits-fixmatch"]) == 2
    assert "is for `train classify`" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    assert main(["train", "classify", "--config", str(bad), "--data", "digits"]) == 2
    assert "unknown setting(s) learning_rate" in capsys.readouterr().err


BAD_VALUES = [  # (command, key: value, what the error line must say after "FILE: key: ")
    ("train classify", "freeze_backbone: maybe", 'expected true or false, got "maybe"'),
    ("train classify", "freeze_backbone: 'false'", 'expected true or false, got "false"'),
    ("train classify", "deterministic: 1", "expected true or false, got 1"),
    ("train classify", "epochs: one", 'expected an integer, got "one"'),
    ("train classify", "epochs: 1.5", "expected an integer, got 1.5"),
    ("train classify", "lr: [1, 2]", "expected a number, got a list [1, 2]"),
    ("train classify", "lr: true", "expected a number, got true"),
    ("train classify", "optimizer: rmsprop", 'expected one of sgd, adamw, got "rmsprop"'),
    ("train classify", "image_size: [64, x]", 'expected an integer, got "x"'),
    ("train classify", "image_size: []", "expected one or more values"),
    ("train classify", "threshold: 2", "must be between 0 and 1, got 2"),
    ("train classify", "precision: 8", "must be one of 32,"),
    ("train classify", "model: {name: resnet18}", 'expected text, got {"name": "resnet18"}'),
    ("train detect", "norm: layer", "expected one of auto, batch, group"),
    ("train detect", "scale_min: small", "expected a number"),
    ("train sequence", "freeze_bn: 'yes'", 'expected true or false, got "yes"'),
]


@pytest.mark.parametrize("command, line, message", BAD_VALUES, ids=[c[1] for c in BAD_VALUES])
def test_a_config_value_of_the_wrong_type_is_one_line_naming_file_key_and_type(command, line, message, tmp_path,
                                                                               capsys):
    config = tmp_path / "c.yaml"
    config.write_text(line + "\n")
    assert main([*command.split(), "--config", str(config), "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    key = line.split(":")[0]
    assert err.count("\n") == 1 and err.startswith(f"error: {config}: {key}: {message}"), err


def _typed_actions(words):
    from backbonekit.cli import build_parser
    from backbonekit.io.config_file import subparser

    return [a for a in subparser(build_parser(), words)._actions
            if a.option_strings and a.dest not in ("help", "config") and a.help != "==SUPPRESS=="]


@pytest.mark.parametrize("command", ["train classify", "train noisy-student", "train detect", "train sequence"])
def test_every_option_given_its_own_default_or_a_flag_in_a_config_reads_back_the_same(command, tmp_path):
    """Good values still work: each option's default (and every flag set to true and to false), written as YAML."""
    from backbonekit.cli import parse

    actions = _typed_actions(command.split())
    settings = {a.dest: a.default for a in actions if a.default is not None and a.nargs != 0}
    flags = [a.dest for a in actions if a.nargs == 0]
    for value in (True, False):
        config = tmp_path / f"{value}.yaml"
        config.write_text(yaml.safe_dump({**settings, **{f: value for f in flags}}))
        required = ["--unlabeled", "x"] if command == "train noisy-student" else []
        args = parse([*command.split(), "--config", str(config), *required])
        assert {k: getattr(args, k) for k in settings} == settings
        assert {f: getattr(args, f) for f in flags} == {f: value for f in flags}


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_every_recipe_reads_as_typed_values(name):
    from backbonekit.cli import parse

    recipe = list_recipes()[name]
    args = parse([*recipe["command"].split(), "--config", f"recipe:{name}"])
    def words(value):  # `image_size: 32` is `--image-size 32`, read back as [32]; `warmup_epochs: 5` as 5.0
        return [_number_or_text(v) for v in (value if isinstance(value, list) else [value])]

    for key, value in recipe["settings"].items():
        assert words(getattr(args, key.replace("-", "_"))) == words(value), key


def _number_or_text(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
