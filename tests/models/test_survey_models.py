"""The survey architectures (AlexNet, VGG, GoogLeNet, DenseNet, SE-ResNet/ResNeXt, deformable ResNet stages).

For every variant: the parameter count of torchvision's/timm's model, and its outputs (max |diff| ≤ 1e-4) at a square
and a non-square input after loading its random state dict. Then, per family, the model API, backbone mode, summary,
BatchNorm fusion; then the survey tool.

Speed: weight initialisation, not compute, would dominate a file of ~20 big models (a VGG's 102M-weight fc6 takes
~1 s of normal draws on one thread). Peers are therefore built with ``torch.nn.init`` switched off and given random
weights once per module (``_random_weights``: slices of one pre-drawn normal pool, VGG heads shared by all eight
VGGs); our models are built the same way and filled by ``load_weights`` itself — the function
``create_model(pretrained=…)`` calls, tested on fully initialised builds in ``test_create_model_with_peer_weights``.
"""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn as nn
import torchvision
from torchvision.ops import FrozenBatchNorm2d

import backbonekit as bk
from backbonekit.errors import WeightsError
from backbonekit.models.deform_conv import DeformConv2d, load_plain_weights, offset_keys
from backbonekit.nn.fuse import fuse_batchnorm
from backbonekit.tools.summary import summarize
from parity_helpers import TOL, calibrate_bn

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [(64, 64), (64, 96)]  # small (AlexNet's minimum is 63), one of them non-square
slow = pytest.mark.slow

TORCHVISION = ["alexnet", "vgg11", "vgg13", "vgg16", pytest.param("vgg19", marks=slow), "vgg11_bn", "vgg13_bn",
               "vgg16_bn", pytest.param("vgg19_bn", marks=slow), "densenet121", "densenet161", "densenet169",
               pytest.param("densenet201", marks=slow)]
TIMM = ["seresnet50", "seresnet101", pytest.param("seresnet152", marks=slow), "seresnext50_32x4d"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _peer_constructor(name: str):
    if name == "googlenet":
        return lambda: torchvision.models.googlenet(aux_logits=True, init_weights=False)
    if name.startswith("se"):
        timm = pytest.importorskip("timm")
        return lambda: timm.create_model(name)
    return getattr(torchvision.models, name)


@contextlib.contextmanager
def _no_init():
    """``torch.nn.init`` does nothing: parameters keep the uninitialised memory ``torch.empty`` gave them."""
    saved = {n: f for n, f in vars(nn.init).items() if n.endswith("_") and not n.startswith("_") and callable(f)}
    try:
        for n in saved:
            setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def _uninitialised(constructor, **kwargs) -> nn.Module:
    """Build without initialising the weights (their values are set afterwards, or never read). Not the meta device:
    its initialisers run as Python decompositions, ~1 s for a ResNet-101."""
    with _no_init():
        return constructor(**kwargs)


_BIG: dict[tuple, torch.Tensor] = {}  # shape → weights drawn once (VGG/AlexNet fc6/fc7: 120M of the file's draws)
_POOL = torch.randn(2 ** 24, generator=torch.Generator().manual_seed(12345))


def _normal(shape, g: torch.Generator) -> torch.Tensor:
    """Standard-normal values: a slice of one pre-drawn pool at a random offset (a copy costs a tenth of a draw;
    tensors longer than the pool repeat it)."""
    n = int(torch.Size(shape).numel())
    if n > len(_POOL):
        return _POOL.repeat(-(-n // len(_POOL)))[:n].view(shape)
    start = int(torch.randint(0, len(_POOL) - n + 1, (), generator=g))
    return _POOL[start:start + n].view(shape)


def _random_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give an uninitialised model He-normal weights, small random biases, fresh BN statistics. Matrices of
    ≥ 4M weights are made once per shape and shared (read-only) by every model that has one."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, v in model.state_dict().items():
        if v.numel() >= 2 ** 22 and tuple(v.shape) in _BIG:
            sd[key] = _BIG[tuple(v.shape)]
        elif key.endswith("num_batches_tracked"):
            sd[key] = torch.zeros((), dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.ones(v.shape)
        elif key.endswith("running_mean"):
            sd[key] = torch.zeros(v.shape)
        elif v.ndim >= 2:
            sd[key] = _normal(v.shape, g) * (2.0 / v[0].numel()) ** 0.5
            if v.numel() >= 2 ** 22:
                _BIG[tuple(v.shape)] = sd[key]
        else:
            sd[key] = _normal(v.shape, g) * 0.01
    model.load_state_dict(sd, assign=True)
    return model


def _build(name: str, **kwargs) -> nn.Module:
    """``create_model`` with random weights drawn as for the peers (the API tests need values, not torch's init)."""
    return _random_weights(_uninitialised(bk.create_model, name=name, **kwargs))


def _has_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


REUSED = {"vgg11", "googlenet", "densenet121", "seresnet50"}  # peers that more than one test compares with


class Peers:
    """name → peer with random weights (BatchNorm calibrated), built once per module; ``release`` frees one that no
    other test needs (all of them at once would hold ~2.5 GB)."""

    def __init__(self):
        self.cache: dict[str, nn.Module] = {}

    def __call__(self, name: str) -> nn.Module:
        if name not in self.cache:
            peer = _random_weights(_uninitialised(_peer_constructor(name)))
            self.cache[name] = calibrate_bn(peer, SIZES[0]) if _has_bn(peer) else peer.eval()
        return self.cache[name]

    def release(self, name: str) -> None:
        if name not in REUSED:
            self.cache.pop(name, None)


@pytest.fixture(scope="module")
def peers():
    return Peers()


def _ours(name: str, state_dict: dict, **kwargs) -> nn.Module:
    """Our model with ``state_dict`` loaded by ``load_weights`` (strict names and shapes, layout conversion)."""
    return bk.load_weights(_uninitialised(bk.create_model, name=name, **kwargs), state_dict).eval()


def _assert_same(peer: nn.Module, ours: nn.Module, sizes=SIZES, where=""):
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        with torch.inference_mode():
            expected, got = peer(x), ours(x)
        assert got.shape == expected.shape
        # Non-vacuous: the logits must depend on the image.
        assert (expected[0] - expected[1]).abs().max() > 1e-2, (where, (h, w))
        assert (got - expected).abs().max().item() <= TOL, (where, (h, w))


# ------------------------------------------------------------------------------------- counts and parity

@pytest.mark.parametrize("name", TORCHVISION + TIMM)
def test_parameter_count_equals_peer(name):
    peer = _uninitialised(_peer_constructor(name))
    assert n_params(_uninitialised(bk.create_model, name=name, num_classes=1000)) == n_params(peer)


@pytest.mark.parametrize("aux_logits", [True, False])
def test_googlenet_parameter_count_equals_torchvision(aux_logits):
    peer = _uninitialised(torchvision.models.googlenet, aux_logits=aux_logits, init_weights=False)
    ours = _uninitialised(bk.create_model, name="googlenet", aux_logits=aux_logits, num_classes=1000)
    assert n_params(ours) == n_params(peer)


@pytest.mark.parametrize("name,count", [("alexnet", 61_100_840), ("vgg16", 138_357_544), ("googlenet", 6_624_904),
                                        ("densenet121", 7_978_856), ("seresnet50", 28_088_024)])
def test_published_parameter_counts(name, count):
    assert n_params(_uninitialised(bk.create_model, name=name)) == count


@pytest.mark.parametrize("name", TORCHVISION + TIMM)
def test_outputs_equal_peer(name, peers):
    peer = peers(name)
    _assert_same(peer, _ours(name, peer.state_dict()), where=name)
    peers.release(name)


def test_googlenet_outputs_equal_torchvision_with_and_without_aux_heads(peers):
    peer = peers("googlenet")  # torchvision with aux heads, as its ImageNet checkpoint
    sd = peer.state_dict()
    _assert_same(peer, _ours("googlenet", sd, aux_logits=True), where="aux")
    ours = _ours("googlenet", sd)  # aux heads dropped on load, as torchvision's loader does
    assert ours.aux1 is None and not any(k.startswith("aux") for k in ours.state_dict())
    _assert_same(peer, ours, where="no aux")


def test_googlenet_transform_input_equals_torchvision(peers):
    peer = peers("googlenet")
    ours = _ours("googlenet", peer.state_dict(), transform_input=True)
    peer.transform_input = True
    try:
        _assert_same(peer, ours, where="transform_input")
    finally:
        peer.transform_input = False


def test_googlenet_training_forward_returns_torchvision_aux_outputs():
    peer = _random_weights(_uninitialised(torchvision.models.googlenet, aux_logits=True, init_weights=False,
                                    dropout=0.0, dropout_aux=0.0), seed=3)
    peer = calibrate_bn(peer, (64, 64))
    ours = _ours("googlenet", peer.state_dict(), aux_logits=True, drop_rate=0.0, dropout_aux=0.0)
    peer.train(), ours.train()
    x = torch.randn(4, 3, 64, 64)
    expected, got = peer(x), ours(x)
    assert type(got).__name__ == "GoogLeNetOutputs" and got._fields == ("logits", "aux_logits2", "aux_logits1")
    for a, b in zip(got, expected):
        assert a.shape == b.shape == (4, 1000)
        assert (a - b).abs().max().item() <= TOL
    ours.eval()
    with torch.inference_mode():
        assert isinstance(ours(x), torch.Tensor)  # eval (and aux_logits=False): logits only


@pytest.mark.parametrize("name", ["densenet121", "googlenet", "seresnet50"])
def test_create_model_with_peer_weights(name, peers):
    # The path users take: a fully initialised build, then load_weights (the others skip the initialisation).
    peer = peers(name)
    _assert_same(peer, bk.create_model(name, pretrained=peer.state_dict()).eval(), SIZES[:1], name)
    if name == "seresnet50":  # timm's key names, loaded unrenamed
        assert {"layer1.0.se.fc1.weight", "layer1.0.se.fc2.bias"} <= set(peer.state_dict())


@pytest.mark.parametrize("name,kwargs", [("vgg11", {}), ("googlenet", {"aux_logits": True})])
def test_weights_for_another_class_count_load_all_but_the_classifiers(name, kwargs, peers):
    peer = peers(name)
    with pytest.warns(UserWarning, match="1000 classes"):
        ours = _ours(name, peer.state_dict(), num_classes=10, **kwargs)
    theirs, own = peer.state_dict(), ours.state_dict()
    classifiers = ("classifier.6.",) if name == "vgg11" else ("fc.", "aux1.fc2.", "aux2.fc2.")
    assert all(own[k].shape[0] == 10 for k in own if k.startswith(classifiers))
    assert all(torch.equal(own[k], theirs[k]) for k in own if not k.startswith(classifiers))


def test_densenet_old_checkpoint_keys_load(peers):
    peer = peers("densenet121")
    old = {}
    for key, value in peer.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # the 2017 checkpoints have none
        for part in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        old[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    _assert_same(peer, _ours("densenet121", old), SIZES[:1])


def test_densenet_memory_efficient_checkpoints_and_computes_the_same(monkeypatch):
    import backbonekit.models.densenet as densenet

    plain = calibrate_bn(bk.create_model("densenet121", num_classes=10), (64, 64))
    efficient = bk.create_model("densenet121", num_classes=10, memory_efficient=True,
                                pretrained=plain.state_dict())
    calls = []
    real = densenet.cp.checkpoint
    monkeypatch.setattr(densenet.cp, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(2, 3, 64, 64)
    outs = []
    for model in (plain, efficient):
        model.train()
        out = model(x)
        out.square().mean().backward()
        outs.append((out.detach(), model.features.conv0.weight.grad.clone()))
    assert len(calls) == 58  # one per dense layer (6 + 12 + 24 + 16), in the efficient model only
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------- deformable stages

@pytest.fixture(scope="module")
def tv_resnet50():
    return calibrate_bn(torchvision.models.resnet50(), SIZES[0])


@pytest.mark.parametrize("version", [1, 2])
def test_deformable_resnet50_from_torchvision_weights_starts_unchanged(version, tv_resnet50):
    ours = bk.create_model("resnet50", deform_stages=(3, 4), deform_version=version)
    deform = {n for n, m in ours.named_modules() if isinstance(m, DeformConv2d)}
    assert deform == {f"layer{s}.{i}.conv2" for s, n in ((3, 6), (4, 3)) for i in range(n)}
    assert all(m.version == version for m in ours.modules() if isinstance(m, DeformConv2d))
    # Strict key check except the new offset predictors.
    result = ours.load_state_dict(tv_resnet50.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(offset_keys(ours)) and len(result.missing_keys) == 2 * 9
    assert all(ours.get_parameter(k).abs().max() == 0 for k in offset_keys(ours))
    _assert_same(tv_resnet50, ours.eval(), where=f"DCNv{version}")


def test_load_plain_weights_is_strict_except_offsets(tv_resnet50):
    ours = load_plain_weights(bk.create_model("resnet50", deform_stages=(3, 4)), tv_resnet50.state_dict())
    _assert_same(tv_resnet50, ours.eval(), SIZES[:1])
    with pytest.raises(WeightsError, match="1 missing"):
        bad = {k: v for k, v in tv_resnet50.state_dict().items() if k != "layer1.0.conv1.weight"}
        load_plain_weights(_uninitialised(bk.create_model, name="resnet50", deform_stages=(3, 4)), bad)


def test_deformable_basic_blocks_and_offsets_learn():
    peer = calibrate_bn(torchvision.models.resnet18(), SIZES[0])
    ours = bk.create_model("resnet18", deform_stages=(3, 4))
    deform = {n for n, m in ours.named_modules() if isinstance(m, DeformConv2d)}
    assert deform == {f"layer{s}.{i}.conv{c}" for s in (3, 4) for i in (0, 1) for c in (1, 2)}
    ours = load_plain_weights(ours, peer.state_dict())
    _assert_same(peer, ours.eval(), where="resnet18 DCNv2")
    ours.train()
    ours(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
    grad = ours.layer3[0].conv1.conv_offset.weight.grad
    assert grad is not None and grad.abs().max() > 0  # zero-initialised, yet trainable


def test_nan_offsets_give_nan_not_a_crash():
    # torchvision's CPU kernel segfaults on NaN offsets; ours turns them into NaN outputs like any layer.
    conv = DeformConv2d(8, 8, 3, padding=1, version=1)
    with torch.no_grad():
        conv.conv_offset.bias.fill_(float("nan"))
        out = conv(torch.randn(1, 8, 6, 6))
    assert out.isnan().all()


def test_deform_options_are_checked():
    with pytest.raises(ValueError, match="deform_stages"):
        bk.create_model("resnet18", deform_stages=(5,))
    with pytest.raises(ValueError, match="deform_version"):
        bk.create_model("resnet18", deform_stages=(4,), deform_version=3)


# ------------------------------------------------------------------------------------- API per family

FAMILIES = [
    # name, kwargs, backbone out_indices, their strides, head modules (parameters outside the levels)
    ("alexnet", {}, (1, 2, 3), [8, 16, 32], ("classifier",)),
    ("vgg11_bn", {}, (3, 4, 5), [8, 16, 32], ("classifier",)),
    ("googlenet", {"aux_logits": True}, (2, 3, 4), [8, 16, 32], ("fc", "aux1", "aux2")),
    ("densenet121", {}, (2, 3, 4), [8, 16, 32], ("classifier",)),
    ("seresnet50", {}, (2, 3, 4), [8, 16, 32], ("fc",)),
    ("resnet50", {"deform_stages": (3, 4)}, (2, 3, 4), [8, 16, 32], ("fc",)),
]
FAMILY_IDS = [f[0] + ("_dcn" if f[1].get("deform_stages") else "") for f in FAMILIES]


@pytest.mark.parametrize("name,kwargs,out_indices,strides,head", FAMILIES, ids=FAMILY_IDS)
def test_model_api(name, kwargs, out_indices, strides, head):
    assert name in bk.list_models() and name in bk.list_models(name[:4] + "*", task="classify")
    cfg = bk.default_cfg(name)
    model = _build(name, num_classes=7, **kwargs).eval()
    fc = model.get_submodule(cfg["classifier"])
    assert isinstance(fc, nn.Linear) and fc.out_features == 7 and model.get_classifier() is fc
    assert model.pretrained_cfg["input_size"] == (3, 224, 224)

    # Every parameter belongs to exactly one level or to the head (so freezing levels freezes all but the head).
    levels = model.level_modules()
    for pname, _ in model.named_parameters():
        owners = [i for i, names in enumerate(levels) if any(pname.startswith(n + ".") for n in names)]
        assert len(owners) == 1 or (not owners and pname.startswith(tuple(h + "." for h in head))), pname

    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        outs = model.forward_levels(x)
        assert len(outs) == len(model.feature_info)
        for out, info in zip(outs, model.feature_info):
            assert out.shape[1] == info["num_chs"]
            # Nominal strides: AlexNet's unpadded convs and GoogLeNet's ceil-mode pools round the other way.
            assert abs(out.shape[2] - 64 / info["reduction"]) <= 1 and abs(out.shape[3] - 96 / info["reduction"]) <= 1
        assert [o.shape for o in model.forward_levels(x, last=1)] == [o.shape for o in outs[:2]]
        feats = model.forward_features(x)
        torch.testing.assert_close(feats, outs[-1])
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, model.num_features)
        logits = model.forward_head(feats)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(logits, fc(pre))
        assert logits.shape == (2, 7)

    mlp = list(model.classifier[:-1]) if isinstance(getattr(model, "classifier", None), nn.Sequential) else []
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3 and model.num_classes == 3
    if mlp:  # AlexNet/VGG: only the last Linear is replaced
        assert all(a is b for a, b in zip(mlp, model.classifier[:-1]))
    if name == "googlenet":
        model.train()
        out = model(torch.randn(2, 3, 64, 96))
        assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 3)
        model.eval()
    model.reset_classifier(0)
    with torch.inference_mode():
        assert model(x).shape == (2, model.num_features)


@pytest.mark.parametrize("name,kwargs,out_indices,strides,head", FAMILIES, ids=FAMILY_IDS)
def test_backbone_mode(name, kwargs, out_indices, strides, head):
    backbone = _random_weights(_uninitialised(bk.create_backbone, name=name, out_indices=out_indices, frozen_bn=True,
                                        trainable_stages=2, **kwargs))
    assert backbone.strides == strides
    body = backbone.body
    if name != "alexnet":
        assert any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in body.modules())
    levels = body.level_modules()
    for pname, p in body.named_parameters():
        owner = next((i for i, names in enumerate(levels) if any(pname.startswith(n + ".") for n in names)), None)
        if owner is not None:
            assert p.requires_grad == (owner >= len(levels) - 2), pname
    if name == "googlenet":
        assert body.aux1 is None and body.aux2 is None  # auxiliary classifiers go with the classifier
    backbone.train()
    outs = backbone(torch.randn(2, 3, 128, 128))
    assert [o.shape[1] for o in outs] == backbone.channels
    assert all(abs(o.shape[-1] - 128 / s) <= 1 for o, s in zip(outs, strides))  # AlexNet: 15, 7, 3
    sum(o.mean() for o in outs).backward()
    assert any(p.grad is not None for p in body.parameters() if p.requires_grad)


@pytest.mark.parametrize("name,kwargs,out_indices,strides,head", FAMILIES, ids=FAMILY_IDS)
def test_summary(name, kwargs, out_indices, strides, head):
    model = _build(name, **kwargs)
    summary = summarize(model, (3, 64, 96))
    assert summary.total_params == n_params(model) and summary.flops > 0 and summary.rows
    if kwargs.get("deform_stages"):  # deformable convs count as the convs they compute (plus their predictors)
        assert summary.flops > summarize(_build(name), (3, 64, 96)).flops


@pytest.mark.parametrize("name,kwargs", [("vgg11_bn", {}), ("googlenet", {}), ("seresnet50", {}),
                                         ("resnet50", {"deform_stages": (3, 4)})],
                         ids=["vgg11_bn", "googlenet", "seresnet50", "resnet50_dcn"])
def test_fused_model_computes_the_same(name, kwargs):
    model = _build(name, **kwargs)
    for m in model.modules():
        if isinstance(m, DeformConv2d):
            # Deform for real, but gently: He-normal offset predictors would amplify float rounding chaotically.
            nn.init.normal_(m.conv_offset.weight, std=1e-4)
            nn.init.normal_(m.conv_offset.bias, std=0.5)
    fc = model.get_classifier()
    fc.weight = nn.Parameter(fc.weight.detach() * 0.1)  # logits of magnitude ~1 (He-init logits reach ~10)
    model = calibrate_bn(model, (64, 96))
    x = torch.randn(2, 3, 64, 96)
    # In float64 the folding itself is shown exact (not for VGG: a float64 copy of its head is 1 GB).
    exact = copy.deepcopy(model).double() if name != "vgg11_bn" else None
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_batchnorm(model, inplace=True)
        got = fused(x)
        if exact is not None:
            expected64 = exact(x.double())
            assert (fuse_batchnorm(exact, inplace=True)(x.double()) - expected64).abs().max().item() <= 1e-9
    assert not any(type(m) is nn.BatchNorm2d for m in fused.modules())
    assert (expected[0] - expected[1]).abs().max() > 1e-2
    assert (got - expected).abs().max().item() <= TOL  # float32 rounding, ~3e-5 here


def test_densenet_fuses_only_its_stem():
    # Pre-activation (BN → ReLU → conv): a BN feeds a ReLU before any conv, so it cannot be folded; only the stem
    # (conv0 → norm0) is a conv → BN pair. 120 of the 121 BatchNorms stay.
    model = calibrate_bn(bk.create_model("densenet121"), (64, 64))
    before = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_batchnorm(model)
        got = fused(x)
    assert before == 1 + 2 * 58 + 3 + 1 and sum(type(m) is nn.BatchNorm2d for m in fused.modules()) == before - 1
    assert isinstance(fused.features.norm0, nn.Identity)
    assert (got - expected).abs().max().item() <= TOL


# ------------------------------------------------------------------------------------- the survey tool

@pytest.mark.parametrize("name,kwargs,depth", [
    ("alexnet", {}, 8), ("vgg11", {}, 11), ("vgg16", {}, 16), ("vgg19", {}, 19),
    ("googlenet", {"aux_logits": True}, 22), ("resnet18", {}, 18), ("resnet50", {}, 50), ("densenet121", {}, 121), ("densenet201", {}, 201),
    ("seresnet50", {}, 50), ("seresnext50_32x4d", {}, 50)])
def test_layer_counts_are_the_papers(name, kwargs, depth):
    from backbonekit.tools.survey import count_layers

    model = _random_weights(_uninitialised(bk.create_model, name=name, **kwargs))
    assert count_layers(model, (3, 64, 64))[0] == depth


def test_survey_rows():
    from backbonekit.tools.survey import format_rows, survey_rows

    rows = survey_rows(["googlenet", ("resnet18", {"deform_stages": (3, 4)})], image_size=64, threads=1)
    inception, dcn = rows
    assert inception["family"] == "GoogLeNet" and inception["layers"] == 22 and inception["conv_fc"] == 58
    assert inception["params"] == 6_624_904 and inception["input_size"] == (64, 64)
    assert inception["levels"] == "64@2 192@4 480@8 832@16 1024@32"
    assert dcn["family"] == "ResNet + DCNv2" and dcn["layers"] == 18 and dcn["conv_fc"] == 21 + 8
    assert all(r["gflops"] > 0 and r["images_per_s"] > 0 for r in rows)
    (default,) = survey_rows(["resnet18"], measure_speed=False)
    assert default["input_size"] == (224, 224) and default["images_per_s"] is None
    assert abs(default["gflops"] / 2 - 1.81) < 0.01  # multiply-adds: torchvision's published 1.81 G
    table = format_rows(rows + [default])
    assert table.splitlines()[0].split()[:3] == ["model", "family", "input"] and len(table.splitlines()) == 4
