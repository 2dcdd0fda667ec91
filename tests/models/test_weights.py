"""Reading weight files of every layout, unwrapping checkpoints, saving safetensors, and clear errors."""
import warnings

import pytest
import torch
import torchvision

import backbonekit as bk
from backbonekit.errors import WeightsError
from backbonekit.weights import detect_layout, read_metadata


def _same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
def test_load_pth_file(tmp_path, suffix):
    peer = torchvision.models.resnet18()
    path = tmp_path / f"r18{suffix}"
    torch.save(peer.state_dict(), path)
    model = bk.create_model("resnet18", pretrained=str(path))
    assert torch.equal(model.conv1.weight, peer.conv1.weight)


def test_unwraps_training_checkpoints_and_prefixes(tmp_path):
    source = bk.create_model("efficientnet_b0")
    wrapped = {"epoch": 3, "optimizer": {"state": {}},
               "state_dict": {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "train.pth"
    torch.save(wrapped, path)
    assert _same_params(bk.create_model("efficientnet_b0", pretrained=path), source)


def test_prefers_ema_when_asked():
    a, b = bk.create_model("resnet18"), bk.create_model("resnet18")
    ckpt = {"state_dict": a.state_dict(), "state_dict_ema": b.state_dict()}
    assert _same_params(bk.load_weights(bk.create_model("resnet18"), ckpt), a)
    assert _same_params(bk.load_weights(bk.create_model("resnet18"), ckpt, prefer_ema=True), b)


def test_lightning_style_prefix_is_stripped():
    source = bk.create_model("resnet18")
    ckpt = {"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}
    assert _same_params(bk.load_weights(bk.create_model("resnet18"), ckpt), source)


def test_layout_detection():
    assert "torchvision" in detect_layout(torchvision.models.efficientnet_b0().state_dict())
    timm = pytest.importorskip("timm")
    assert "timm" in detect_layout(timm.create_model("efficientnet_b0").state_dict())


def test_classifier_of_another_size_is_dropped_with_a_warning():
    peer = torchvision.models.resnet18()
    with pytest.warns(UserWarning, match="classifier"):
        model = bk.create_model("resnet18", num_classes=10, pretrained=peer.state_dict())
    assert model.fc.out_features == 10
    assert torch.equal(model.layer4[1].conv2.weight, peer.layer4[1].conv2.weight)


def test_model_without_classifier_drops_it_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = bk.create_model("resnet18", num_classes=0, pretrained=torchvision.models.resnet18().state_dict())
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 512)


def test_safetensors_round_trip_with_metadata(tmp_path):
    model = bk.create_model("tf_efficientnet_b0", num_classes=7, drop_rate=0.1).eval()
    path = bk.save_weights(model, tmp_path / "out" / "w.safetensors", metadata={"class_names": ["a", "b"]})
    meta = read_metadata(path)
    assert meta["architecture"] == "tf_efficientnet_b0" and meta["num_classes"] == "7"
    assert meta["class_names"] == '["a", "b"]'
    rebuilt = bk.load_model(path).eval()
    assert rebuilt.num_classes == 7 and rebuilt.head_drop.p == 0.1
    assert _same_params(rebuilt, model)
    assert _same_params(bk.create_model("tf_efficientnet_b0", num_classes=7, pretrained=path), model)
    assert not list(tmp_path.glob("out/.*tmp"))  # the atomic write left no temporary file


def test_missing_file():
    with pytest.raises(WeightsError, match="nope.pth: no such file"):
        bk.create_model("resnet18", pretrained="nope.pth")


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(bk.create_model("resnet18").state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cut.pth: not a PyTorch file"):
        bk.create_model("resnet18", pretrained=path)


def test_truncated_safetensors(tmp_path):
    path = bk.save_weights(bk.create_model("resnet18"), tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="w.safetensors: not a readable safetensors"):
        bk.create_model("resnet18", pretrained=path)


def test_not_a_weight_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(WeightsError, match="notes.pth"):
        bk.create_model("resnet18", pretrained=path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(torchvision.models.resnet18(), path)  # a whole pickled module, not a state dict
    with pytest.raises(WeightsError, match="holds Python objects besides tensors and plain data, which are never"):
        bk.create_model("resnet18", pretrained=path)


def test_weights_of_another_architecture():
    with pytest.raises(WeightsError, match=r"do not fit resnet18: .*unexpected \(layer1.0.conv3.weight"):
        bk.create_model("resnet18", pretrained=torchvision.models.resnet50().state_dict())
    with pytest.raises(WeightsError, match="shape mismatch"):
        bk.create_model("efficientnet_b1", pretrained=torchvision.models.efficientnet_b2().state_dict())
    with pytest.raises(WeightsError, match="not an EfficientNet"):
        efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
        bk.create_model("resnet18", pretrained=efficientnet_pytorch.EfficientNet.from_name("efficientnet-b0")
                        .state_dict())


def test_no_tensors():
    with pytest.raises(WeightsError, match="no tensors"):
        bk.load_weights(bk.create_model("resnet18"), {"epoch": 1, "config": {"lr": 0.1}})


def test_plain_resnet_weights_load_into_a_deformable_resnet():
    """create_model(…, deform_stages=…, pretrained=torchvision weights): only the offset predictors are missing; they
    keep their zero initialisation, so the outputs start as torchvision's."""
    import torchvision

    peer = torchvision.models.resnet18().eval()
    ours = bk.create_model("resnet18", deform_stages=(3, 4), pretrained=peer.state_dict()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - peer(x)).abs().max() < 1e-4
    with pytest.raises(WeightsError, match="missing"):  # anything else missing is still an error
        bk.create_model("resnet18", deform_stages=(3,), pretrained={k: v for k, v in peer.state_dict().items()
                                                                     if not k.startswith("layer1.0.conv1")})
