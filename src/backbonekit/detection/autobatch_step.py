"""The detector train step that ``--batch-size auto`` measures, rebuilt from plain data inside a trial process."""
from __future__ import annotations

import torch

from backbonekit.detection.task import DetectionTask


def make_step(recipe: dict):
    """Returns ``step(batch_size)``: one forward/backward/optimiser step of ``DetectionTask(**recipe["task"])`` on
    random images, each with a few boxes, so that target building and the loss are measured too."""
    task = DetectionTask(**recipe["task"])
    device = torch.device(recipe.get("device", "cpu"))
    task.to(device).train()
    optimizer = torch.optim.SGD(task.parameters(), lr=0.01, momentum=0.9)
    height, width = task.cfg.image_size
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(recipe.get("precision", "32"))
    boxes = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.3, 0.9, 0.8]]) * torch.tensor([width, height] * 2)
    target = {"boxes": boxes.to(device), "labels": torch.zeros(2, dtype=torch.long, device=device)}

    def step(batch_size: int) -> None:
        images = torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8, device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = task.compute_loss(*task(images), [target] * batch_size)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step
