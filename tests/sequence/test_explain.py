"""explain sequence: the recorded cross-attention is the attention SDPA applied, recording changes nothing, one
map per decoded step."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backbonekit.cli import main
from backbonekit.errors import ConfigError
from backbonekit.tasks import explain
from backbonekit.models.transformer import Attention, attention_weights
from backbonekit.sequence.explain import edit_attention, recorded_cross_attention, step_panels
from backbonekit.sequence.vocab import edit_names
from backbonekit.sequence.vocab import sequence_length
from backbonekit.tasks import load_trained


def test_the_recorded_weights_are_the_ones_sdpa_applies():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=g) for _ in range(3))
    bias = torch.randn(2, 4, 6, 6, generator=g).masked_fill(torch.rand(2, 4, 6, 6, generator=g) < 0.2, float("-inf"))
    bias[..., 0] = 0  # every row keeps one key
    weights = attention_weights(q, k, bias)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6))
    torch.testing.assert_close(weights @ v, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


def test_the_module_records_the_weights_its_output_is_made_of():
    attention = Attention(16, heads=4).eval()
    g = torch.Generator().manual_seed(1)
    q, kv = torch.randn(2, 3, 16, generator=g), torch.randn(2, 7, 16, generator=g)
    bias, padding = torch.randn(2, 4, 3, 7, generator=g), torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    with torch.no_grad():
        plain = attention(q, kv, kv, bias=bias, key_padding_mask=padding)
        attention.recorded = []
        recorded = attention(q, kv, kv, bias=bias, key_padding_mask=padding)
    (weights,) = attention.recorded
    assert torch.equal(plain, recorded) and weights.shape == (2, 4, 3, 7)
    assert weights[1, :, :, 5:].abs().sum() == 0  # padding gets no attention
    v = attention.v_proj(kv).view(2, 7, 4, 4).transpose(1, 2)
    mixed = (weights @ v).transpose(1, 2).reshape(2, 3, 16)
    torch.testing.assert_close(attention.out_proj(mixed), plain)


def test_recording_changes_no_prediction_and_gives_a_map_per_step(tiny_runs):
    _, trained = load_trained(tiny_runs["sequence"] / "best.ckpt")
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = trained(images)
    labels, maps = edit_attention(trained, images)
    assert torch.equal(labels, plain)
    assert trained.model.transformer.decoder[-1].cross_attn.recorded is None  # off again
    assert maps.shape[:2] == (3, 5)
    for label, per_step in zip(labels.tolist(), maps):
        n = sequence_length(label)
        torch.testing.assert_close(per_step[:n].flatten(1).sum(-1), torch.ones(n))
        assert per_step[n:].abs().sum() == 0


def test_the_decoding_calls_are_recorded_once_each(tiny_runs):
    _, trained = load_trained(tiny_runs["sequence"] / "best.ckpt")
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    with recorded_cross_attention(trained.model) as (calls, grid), torch.no_grad():
        labels = trained(images)
    assert len(calls) == min(5, sequence_length(labels[0].tolist()) + 1) and len(grid) == 1


def test_the_command_writes_the_strip_and_takes_no_cam_options(tiny_runs, tmp_path, capsys):
    image = sorted((tiny_runs["data"]["sequence"]).rglob("*.jpg"))[0]
    checkpoint = str(tiny_runs["sequence"] / "best.ckpt")
    assert main(["explain", "sequence", "--checkpoint", checkpoint, str(image), "--out", str(tmp_path),
                 "--feature-maps", "2"]) == 0
    written = [tmp_path / f"{image.stem}_steps.png", tmp_path / f"{image.stem}_features.png"]
    assert capsys.readouterr().out.split() == [str(p) for p in written]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    try:
        code = main(["explain", "sequence", "--checkpoint", checkpoint, str(image), "--method", "gradcam"])
    except SystemExit as e:
        code = e.code
    assert code == 2 and "unrecognized arguments: --method" in capsys.readouterr().err


def test_a_panel_per_decoded_step_captioned_with_its_edit():
    picture = np.zeros((32, 32, 3), np.uint8)
    maps = torch.zeros(5, 2, 2)
    maps[0, 0, 0] = maps[1, 1, 1] = 1
    panels = step_panels(picture, "face.jpg", torch.tensor([3, 1, 0, 0, 0]), maps, edit_names("facial_components"))
    assert [caption for _, caption in panels] == ["face.jpg", "step 1: eyebrow", "step 2: nose"]
    # each overlay is hottest (jet's red) where its own step looked
    assert panels[1][0][0, 0, 0] > panels[1][0][-1, -1, 0] and panels[2][0][-1, -1, 0] > panels[2][0][0, 0, 0]


def test_another_tasks_checkpoint_and_cam_options_are_refused(tiny_runs, capsys):
    image = str(sorted((tiny_runs["data"]["sequence"]).rglob("*.jpg"))[0])
    assert main(["explain", "sequence", "--checkpoint", str(tiny_runs["classify"] / "best.ckpt"), image]) == 2
    assert "a classify checkpoint, not sequence (use `backbonekit explain classify`)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a CAM: method and layer do not apply"):
        explain(tiny_runs["sequence"] / "best.ckpt", [image], method="layercam")
