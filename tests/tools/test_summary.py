import torch
import torch.nn as nn

import backbonekit as bk
from backbonekit.tools.summary import summarize


def test_totals_and_flops_of_a_hand_computable_net():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 10 * 12, 5))
    s = summarize(net, (3, 10, 12))
    conv_macs = 8 * 10 * 12 * 3 * 3 * 3
    linear_macs = 8 * 10 * 12 * 5
    assert s.flops == 2 * (conv_macs + linear_macs)
    assert s.total_params == 8 * 27 + 960 * 5 + 5 == sum(p.numel() for p in net.parameters())
    assert [r.output_shape for r in s.rows] == [(1, 8, 10, 12), (1, 8, 10, 12), (1, 960), (1, 5)]
    assert s.activation_bytes == 4 * (960 + 960 + 960 + 5)


def test_resnet50_flops_match_the_published_figure():
    s = summarize(bk.create_model("resnet50"), (3, 224, 224))
    assert abs(s.flops / 2 - 4.09e9) / 4.09e9 < 0.01  # torchvision lists 4.09 GFLOPS, counting multiply-adds
    assert s.total_params == 25_557_032


def test_rows_have_the_real_output_shapes_on_a_non_square_input():
    model = bk.create_model("efficientnet_b0")
    s = summarize(model, (3, 240, 320))
    rows = {r.name: r for r in s.rows}
    assert rows["stem.conv"].output_shape == (1, 32, 120, 160)
    assert rows["head.conv"].output_shape == (1, 1280, 8, 10)
    assert rows["classifier"].output_shape == (1, 1000)
    assert sum(r.params for r in s.rows) == s.total_params  # every parameter sits in exactly one leaf
    assert model.training  # the model's mode is restored


def test_frozen_parameters_are_counted_as_non_trainable():
    backbone = bk.create_backbone("resnet18", trainable_stages=1)
    s = summarize(backbone, (3, 64, 64))
    assert s.trainable_params == sum(p.numel() for p in backbone.body.layer4.parameters())


def test_cli_summary_json(capsys):
    import json

    from backbonekit.cli import main

    assert main(["summary", "resnet18", "--image-size", "64", "96", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 11_689_512 and out["input_size"] == [3, 64, 96] and out["flops"] > 0


def test_cli_summary_counts_a_detector_as_models_lists_it(capsys):
    """Not a 1000-class head on a detector: `summary` and `models` build the model the same way."""
    import json
    import re

    from backbonekit.cli import main

    assert main(["models", "efficientdet_d0"]) == 0
    listed = int(re.search(r"efficientdet_d0\s*│\s*detect\s*│\s*([\d,]+)", capsys.readouterr().out)[1].replace(",", ""))
    assert main(["summary", "efficientdet_d0", "--image-size", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == listed
    assert main(["summary", "efficientdet_d0", "--image-size", "64", "--num-classes", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] < listed  # a head for 3 classes, when asked for


def test_models_table_says_which_model_it_is_measuring(capsys):
    from backbonekit.cli import main

    assert main(["models", "resnet18", "--table"]) == 0
    captured = capsys.readouterr()
    assert "measuring 1/1: resnet18" in captured.err and "measuring" not in captured.out  # the table stays clean


def test_models_table_plot_draws_speed_against_size(tmp_path, capsys):
    from backbonekit.cli import main

    plot = tmp_path / "survey.png"
    assert main(["models", "resnet18", "--table", "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 10000 and "chart written to" in capsys.readouterr().err
    assert main(["models", "resnet18", "--plot", str(plot)]) == 2
    assert "give --table too" in capsys.readouterr().err
