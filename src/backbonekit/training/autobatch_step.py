"""The train step that ``--batch-size auto`` measures, for any task, rebuilt from plain data inside a trial process.

A task's LightningModule supplies ``example_batch(batch_size, device)`` (a batch shaped like its real ones: uint8
images and targets) and ``training_loss(batch)``; the recipe names the task and its spec module (found again through
the task registry) and its configuration, so this file knows no task.
"""
from __future__ import annotations

import torch

from backbonekit.training.task_spec import TaskSpec, resolve


def make_step(recipe: dict):
    """``recipe``: ``{"task": name, "spec": module, "config": {...}, "device": …, "precision": …}`` → ``step(b)``:
    one forward/backward/optimiser step of the task on a batch of ``b``."""
    task = resolve(recipe["spec"], recipe["task"]).task_class()(**recipe["config"])
    device = torch.device(recipe.get("device", "cpu"))
    task.to(device).train()
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(recipe.get("precision", "32"))

    def step(batch_size: int) -> None:
        batch = task.example_batch(batch_size, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = task.training_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


AUTOBATCH_STEP = "backbonekit.training.autobatch_step:make_step"


def autobatch_recipe(spec: TaskSpec, config: dict, precision: str) -> dict:
    """The plain-data recipe for the task of ``spec`` built from ``config``; weight files are left out (random
    weights use the same memory)."""
    plain = {k: v for k, v in config.items() if not k.startswith("pretrained") and k != "teacher"}
    return {"task": spec.name, "spec": spec.module, "config": plain, "precision": precision}
