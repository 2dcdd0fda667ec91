"""What a new user tries first: --version, python -m backbonekit, help that shows defaults, clear missing paths."""
import subprocess
import sys

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
