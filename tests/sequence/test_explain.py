"""explain sequence: the recorded cross-attention is the attention SDPA applied, recording changes nothing, one
map per decoded step."""
import torch
import torch.nn.functional as F

from backbonekit.cli import main
from backbonekit.models.transformer import attention_weights
from backbonekit.sequence.explain import edit_attention, recorded_cross_attention
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
    assert main(["explain", "sequence", "--checkpoint", checkpoint, str(image), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / f"{image.stem}_steps.png")]
    try:
        code = main(["explain", "sequence", "--checkpoint", checkpoint, str(image), "--method", "gradcam"])
    except SystemExit as e:
        code = e.code
    assert code == 2 and "unrecognized arguments: --method" in capsys.readouterr().err
