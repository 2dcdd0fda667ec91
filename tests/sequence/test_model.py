
import pytest
import torch

from backbonekit import create_model
from backbonekit.models.captions import decoder_io
from backbonekit.models.seqfakeformer import SeqFakeFormer, seqfakeformer


def _count(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def small():
    """ResNet-18 SeqFakeFormer with weights perturbed so greedy decoding yields sequences of different lengths."""
    torch.manual_seed(0)
    m = seqfakeformer("resnet18").eval()
    with torch.no_grad():
        for p in m.transformer.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        for p in m.head.parameters():
            torch.nn.init.normal_(p, std=0.3)
        m.head.layers[-1].bias[6] -= 1.0
    return m


@pytest.mark.parametrize("backbone,total,outside", [
    ("resnet50", 27_212_138, 3_704_106),        # the paper: 27.2M, 3.7M outside the backbone
    ("efficientnet_b4", 21_187_186, 3_638_570),  # the paper's 23.0M counts lukemelas' unused 1792×1000 classifier
])
def test_parameter_counts(backbone, total, outside):
    m = seqfakeformer(backbone)
    assert (_count(m), _count(m) - _count(m.backbone)) == (total, outside)


def test_feature_grid_per_backbone():
    r = seqfakeformer("resnet18")  # dilated last stage: stride 16
    e = seqfakeformer("efficientnet_b0")  # head conv: stride 32
    x = torch.randn(1, 3, 64, 64)
    assert r.encode(x)["memory"].shape == (1, 16, 256) and r.input_proj.in_channels == 512
    assert e.encode(x)["memory"].shape == (1, 4, 256) and e.input_proj.in_channels == 1280


def test_registered_and_teacher_forced(small):
    m = create_model("seqfakeformer", backbone="resnet18")
    assert isinstance(m, SeqFakeFormer) and m.model_kwargs == {"backbone": "resnet18"}
    inputs, targets = decoder_io(torch.tensor([[1, 2, 4, 0, 0], [0, 0, 0, 0, 0]]))
    logits = small(torch.randn(2, 3, 64, 64), inputs)
    assert logits.shape == (2, 6, 8)


def test_later_tokens_do_not_change_earlier_logits(small):
    x = torch.randn(1, 3, 64, 64)
    a = torch.tensor([[0, 1, 2, 4, 7, 7]])
    b = torch.tensor([[0, 1, 2, 5, 3, 1]])
    la, lb = small(x, a), small(x, b)
    assert torch.allclose(la[:, :3], lb[:, :3], atol=1e-5)
    assert not torch.allclose(la[:, 3:], lb[:, 3:], atol=1e-4)


def test_padded_batch_runs_masked(small):
    x = torch.randn(2, 3, 64, 64)
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[1, :, 32:] = True
    enc = small.encode(x, mask)
    assert enc["mask"].shape == (2, 16) and enc["mask"][1].sum() == 8


def test_batched_generate_equals_official_per_step_decoding(small):
    torch.manual_seed(1)
    x = torch.randn(8, 3, 64, 64) * torch.linspace(0.2, 3, 8)[:, None, None, None]
    batched = small.generate(x)
    naive = torch.cat([small.generate_naive(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(batched, naive)
    assert len(set((batched != 0).sum(1).tolist())) >= 2  # sequences of different lengths end at different steps
    assert batched.shape == (8, 5)
