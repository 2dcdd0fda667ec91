"""One short step of each task with the survey families, through the public Python API (not the CLI)."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

import backbonekit as bk
from backbonekit.models.captions import NUM_POSITIONS, VOCAB_SIZE, decoder_io

pytestmark = pytest.mark.usefixtures("one_thread")


def test_densenet121_classification_training_step():
    model = bk.create_model("densenet121", num_classes=5, memory_efficient=True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, targets = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 4])
    before = model.classifier.weight.detach().clone()
    loss = F.cross_entropy(model(images), targets)
    loss.backward()
    assert model.features.conv0.weight.grad.abs().max() > 0  # gradients reach the stem through the checkpoints
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.classifier.weight)


def test_googlenet_training_step_with_auxiliary_losses():
    model = bk.create_model("googlenet", num_classes=5, aux_logits=True).train()
    images, targets = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 4])
    out = model(images)
    loss = F.cross_entropy(out.logits, targets) + 0.3 * (F.cross_entropy(out.aux_logits1, targets)
                                                          + F.cross_entropy(out.aux_logits2, targets))
    loss.backward()
    assert model.aux1.fc2.weight.grad is not None and model.aux2.fc2.weight.grad is not None
    model.eval()
    with torch.inference_mode():
        assert model(images).shape == (4, 5)


def test_efficientdet_with_a_densenet_backbone_trains():
    model = bk.create_model("efficientdet_d0", num_classes=3, backbone="densenet121", image_size=(128, 128)).train()
    assert model.backbone.strides == [8, 16, 32] and model.backbone.channels == [512, 1024, 1024]
    images = torch.randn(2, 3, 128, 128)
    cls, box = model.forward_flat(images)
    anchors = model.anchors((128, 128))
    assert cls.shape == (2, len(anchors), 3) and box.shape == (2, len(anchors), 4)
    g = torch.Generator().manual_seed(0)
    cls_target = F.one_hot(torch.randint(0, 3, cls.shape[:2], generator=g), 3).float()
    loss = sigmoid_focal_loss(cls, cls_target, reduction="mean") + F.smooth_l1_loss(box, torch.randn(box.shape))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.body.features.conv0.weight.grad.abs().max() > 0


def test_seqfakeformer_with_an_se_resnet_backbone():
    model = bk.create_model("seqfakeformer", backbone="seresnet50").eval()
    # ResNets get a dilated last stage (SE blocks included); the transformer reads the deepest map.
    assert model.backbone.strides[-1] == 16 and model.feature_info[-1]["num_chs"] == 2048
    labels = torch.tensor([[1, 2, 4, 0, 0], [3, 0, 0, 0, 0]])
    tokens, _ = decoder_io(labels)
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, 64, 64), tokens)
    assert logits.shape == (2, NUM_POSITIONS, VOCAB_SIZE) and torch.isfinite(logits).all()
