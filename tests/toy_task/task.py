"""The toy task's LightningModule and data."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import TensorDataset


class ToyTask(pl.LightningModule):
    def __init__(self, task: str = "toy", image_size: int = 8, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                         torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                         torch.nn.Linear(4, 3))

    def forward(self, images):
        return self.model(images.float() / 255)

    def example_batch(self, batch_size, device="cpu"):
        size = self.hparams.image_size
        return (torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device),
                torch.randint(0, 3, (batch_size,), device=device))

    def training_loss(self, batch):
        images, labels = batch
        return F.cross_entropy(self(images), labels)

    def training_step(self, batch, batch_idx):
        loss = self.training_loss(batch)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.log("val/loss", self.training_loss(batch))
        self.log("val/acc", 100 * (self(images).argmax(1) == labels).float().mean())  # percent, as every score

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


def brightest_channel_data(n: int, size: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 100, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    images[torch.arange(n), labels] += 150
    return TensorDataset(images, labels)
