import math

import torch

from backbonekit.models.transformer import (Attention, DecoderLayer, PositionEmbeddingSine, Transformer,
                                               feature_grid, seca_bias)


def test_position_embedding_normalised_and_masked():
    pe = PositionEmbeddingSine(128)
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[1, :, 3:] = True  # image 1 is padded on the right
    out = pe(mask)
    assert out.shape == (2, 256, 4, 6)
    # y channels 0 (sin) and 1 (cos) at the first row: position (1 - 0.5) / 4 · 2π
    y = 0.5 / 4 * 2 * math.pi
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor(math.sin(y)), atol=1e-5)
    assert torch.allclose(out[0, 1, 0, 0], torch.tensor(math.cos(y)), atol=1e-5)
    # normalised over the valid part: a padded image's pixels get the encoding of the same image unpadded
    alone = pe(torch.zeros(1, 4, 3, dtype=torch.bool))
    assert torch.allclose(out[1, :, :, :3], alone[0], atol=1e-6)


def test_seca_bias_by_hand():
    grid = feature_grid(2, 3)  # cells (x, y) centres: (0.5, 0.5), (1.5, 0.5), (2.5, 0.5), (0.5, 1.5), …
    assert grid.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5]]
    point = torch.tensor([[[[1.0, 0.5], [2.5, 1.5]]]])   # (B=1, Lq=1, heads=2, 2)
    scale = torch.tensor([[[[1.0, 4.0], [0.25, 2.0]]]])
    bias = seca_bias(point, scale, grid)
    assert bias.shape == (1, 2, 1, 6)
    expected = [[-(sx * (px - gx) ** 2 + sy * (py - gy) ** 2) / 4 for gx, gy in grid.tolist()]
                for (px, py), (sx, sy) in zip(point[0, 0].tolist(), scale[0, 0].tolist())]
    assert torch.allclose(bias[0, :, 0], torch.tensor(expected))
    assert bias[0, 0, 0, 0].item() == -0.0625  # head 0, cell (0.5, 0.5): -(1·(1 - 0.5)² + 4·(0.5 - 0.5)²) / 4


def test_attention_bias_is_added_to_logits():
    torch.manual_seed(0)
    attn = Attention(8, 2).eval()
    q, k = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    bias = torch.randn(1, 2, 3, 5)
    out = attn(q, k, k, bias=bias)
    # by hand
    split = lambda t: t.view(1, -1, 2, 4).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(attn.q_proj(q)), split(attn.k_proj(k)), split(attn.v_proj(k))
    w = (qh @ kh.transpose(-1, -2) / 2 + bias).softmax(-1)
    ref = attn.out_proj((w @ vh).transpose(1, 2).reshape(1, 3, 8))
    assert torch.allclose(out, ref, atol=1e-5)


def test_seca_starts_as_unit_scale_gaussian():
    layer = DecoderLayer(256, 4, 512, 0.1, first=True)
    layer.reset_seca()
    x = torch.randn(3, 256)
    assert torch.equal(layer.scale(x) ** 2, torch.ones(3, 8))
    assert layer.point.layers[0].in_features == 256 and len(layer.point.layers) == 3
    assert layer.point.layers[-1].out_features == 2 and layer.offset.out_features == 8


def test_shapes_and_causal_masking():
    torch.manual_seed(0)
    model = Transformer().eval()
    src = torch.randn(2, 256, 4, 5)
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    enc = model.encode(src, mask, PositionEmbeddingSine(128)(mask))
    assert enc["memory"].shape == (2, 20, 256) and enc["grid_size"].tolist() == [5, 4]
    tgt, query_pos = torch.randn(2, 6, 256), torch.randn(6, 256)
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    out = model.decode(tgt, query_pos, enc, tgt_mask=causal)
    assert out.shape == (2, 6, 256)
    changed = tgt.clone()
    changed[:, 4:] = torch.randn(2, 2, 256)  # later tokens change …
    out2 = model.decode(changed, query_pos, enc, tgt_mask=causal)
    assert torch.allclose(out[:, :4], out2[:, :4], atol=1e-5)  # … earlier outputs do not
    assert not torch.allclose(out[:, 4:], out2[:, 4:], atol=1e-3)
