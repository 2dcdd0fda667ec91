"""`bench MODEL --runtimes …`: every runtime of ours and of the peer timed in one process, outputs checked equal to
the peer's eager outputs, ratios against the peer eager and on the same runtime, a chart."""
import json

import pytest

from backbonekit.cli import main
from backbonekit.tools.runtime_bench import RuntimeRow, ratios, run_runtime_bench


def test_every_runtime_is_timed_and_computes_the_peers_outputs(tmp_path):
    rows = run_runtime_bench("resnet18", ["torch", "fused", "onnxruntime", "openvino"], image_size=32, rounds=2,
                             iters=1, warmup=1)
    keys = {(r.runtime, r.who) for r in rows}
    assert keys == {("torch", "torchvision"), ("torch", "ours"), ("fused", "ours"), ("onnxruntime", "ours"),
                    ("onnxruntime", "torchvision"), ("openvino", "ours"), ("openvino", "torchvision")}
    for row in rows:
        assert row.slowest <= row.median <= row.fastest and row.median > 0
        assert row.max_rel_diff < 1e-4, row  # the same function, whatever runs it
    r = ratios(rows, "torchvision")
    assert r["torch"]["vs_peer_same_runtime"] is not None and r["fused"]["vs_peer_same_runtime"] is None


def test_ratios_are_of_medians():
    rows = [RuntimeRow("torch", "tv", 10, 11, 9, 0, 0), RuntimeRow("onnxruntime", "ours", 30, 31, 29, 0, 0),
            RuntimeRow("onnxruntime", "tv", 20, 21, 19, 0, 0)]
    assert ratios(rows, "tv")["onnxruntime"] == {"vs_peer_eager": 3.0, "vs_peer_same_runtime": 1.5}


def test_the_command_prints_json_and_draws_the_chart(tmp_path, capsys):
    plot = tmp_path / "runtimes.png"
    assert main(["bench", "resnet18", "--runtimes", "torch,fused", "--image-size", "32", "--batch-size", "1",
                 "--rounds", "2", "--iters", "1", "--json", "--plot", str(plot)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["runtime"], r["who"]) for r in rows} == {("torch", "torchvision"), ("torch", "ours"), ("fused", "ours")}
    assert plot.stat().st_size > 5000
    assert main(["bench", "resnet18", "--runtimes", "torch,tensorrt"]) == 2
    assert "--runtimes takes a comma-separated list" in capsys.readouterr().err


def test_detector_runtimes_give_the_same_detections():
    from backbonekit.tools.runtime_bench import run_detector_runtime_bench

    rows = run_detector_runtime_bench("efficientdet_d0", ["torch", "fused", "onnxruntime", "openvino"],
                                      image_size=128, rounds=1, iters=1, warmup=0)
    assert {(r.runtime, r.who) for r in rows} == {("torch", "effdet"), ("torch", "ours"), ("fused", "ours"),
                                                 ("onnxruntime", "ours"), ("openvino", "ours")}
    for row in rows:  # torch rows against effdet's detections, exported ones against the same graph eager
        assert row.max_abs_diff < 0.05, row  # box corners in pixels (folded BN rounds differently) and scores


def test_bf16_and_int8_rows_beside_the_peers_own_with_their_size_on_disk():
    rows = run_runtime_bench("resnet18", ["onnxruntime", "openvino-bf16", "onnxruntime-int8", "openvino-int8"],
                             image_size=32, rounds=1, iters=1, warmup=1)
    by_key = {(r.runtime, r.who): r for r in rows}
    for runtime in ("openvino-bf16", "onnxruntime-int8", "openvino-int8"):
        assert {(runtime, "ours"), (runtime, "torchvision")} <= set(by_key)  # the peer's own, quantised the same way
    fp32 = by_key[("onnxruntime", "ours")].size_mb
    assert fp32 == pytest.approx(by_key[("torch", "torchvision")].size_mb, rel=0.01)  # float32 weights either way
    for runtime in ("onnxruntime-int8", "openvino-int8"):
        row = by_key[(runtime, "ours")]
        assert row.size_mb < 0.3 * fp32  # int8 weights
        assert 1e-4 < row.max_rel_diff < 0.2, row  # int8 moves the outputs, a little
