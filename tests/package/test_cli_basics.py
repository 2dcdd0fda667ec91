"""What a new user tries first: --version, python -m backbonekit, help that shows defaults, clear missing paths."""
import argparse
import subprocess
import sys

import pytest

from backbonekit import __version__
from backbonekit.cli import main


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "backbonekit", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"backbonekit {__version__}"


def test_help_shows_every_default(capsys):
    try:
        main(["train", "classify", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS (default: 10)" in text and "--optimizer {sgd,adamw} SGD is Nesterov" in text
    assert "(default: adamw)" in text and "(cosine and step) (default: 1.0)" in text


def test_a_missing_predictions_path_is_named_as_predictions(tmp_path, capsys):
    assert main(["eval", "detect", "--predictions", str(tmp_path / "none.json"), "--data", str(tmp_path)]) == 2
    assert "--predictions" in capsys.readouterr().err
    (tmp_path / "facial_components" / "annotations").mkdir(parents=True)
    (tmp_path / "facial_components" / "annotations" / "test.csv").write_text("file_path,label\na.jpg,\"[0,0,0,0,0]\"\n")
    assert main(["eval", "sequence", "--predictions", str(tmp_path / "p.csv"), "--data", str(tmp_path)]) == 2
    assert "p.csv: no such predictions file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "classify", "--epochs", "one"], ["predict", "classify"], ["train"],
                                  ["train", "classify", "--data", "digits", "--no-such-flag"],
                                  ["data", "synth", "shapes", "--num-images", "0"], ["bench", "--rounds", "x"]])
def test_an_argument_error_is_a_short_usage_line_and_one_error_line(argv, capsys):
    assert main(argv) == 2
    usage, error = capsys.readouterr().err.splitlines()  # not the 40 lines of a train command's full usage
    assert usage.startswith("usage: backbonekit " + " ".join(argv[:1])) and len(usage) <= 120, usage
    assert error.startswith("error: ") and "backbonekit" not in error, error


def test_every_command_and_its_second_word_say_what_they_do(capsys):
    """No placeholder help ("train (per task)"), and `data`'s second word is a command, not a task."""
    from backbonekit.cli import VERBS, build_parser
    from backbonekit.io.config_file import all_parsers

    for parser in all_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.metavar}: no help"
                for choice in action._choices_actions:
                    words = [w for w in choice.help.lower().split() if w != choice.dest]
                    assert len(words) >= 3 and "per task" not in choice.help, choice.help
    for verb in VERBS:
        assert main([verb, "--help"]) == 0
        text = capsys.readouterr().out
        assert "per task" not in text and text.count("\n") > 6, text
    main(["data", "--help"])
    text = capsys.readouterr().out
    assert "TASK" not in text and "synth" in text
