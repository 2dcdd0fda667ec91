"""The train step that ``--batch-size auto`` measures, rebuilt from plain data inside a trial process."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backbonekit.models.registry import create_model


def make_step(recipe: dict):
    """Returns ``step(batch_size)``: one forward/backward/optimiser step on random data of that size."""
    model = create_model(recipe["model"], num_classes=recipe["num_classes"])
    device = torch.device(recipe.get("device", "cpu"))
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    size = recipe["image_size"]
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(recipe.get("precision", "32"))

    def step(batch_size: int) -> None:
        x = torch.randn(batch_size, 3, size, size, device=device)
        y = torch.randint(0, recipe["num_classes"], (batch_size,), device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step
