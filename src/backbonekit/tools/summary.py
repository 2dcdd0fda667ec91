"""Model summary: per-layer output shapes and parameters, totals, FLOPs and an activation-memory estimate.

Hooks record every leaf module's output during one real forward pass, so shapes are those the model actually
produces (non-square inputs, TF padding, dilation). FLOPs come from ``torch.utils.flop_counter`` (1 multiply-add =
2 FLOPs), which counts the aten ops themselves rather than guessing per layer type.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: tuple
    params: int
    trainable: bool


@dataclass
class Summary:
    model_name: str
    input_size: tuple
    stem: str = "imagenet"
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    flops: int = 0
    activation_bytes: int = 0      # outputs of every leaf module in one forward pass
    param_bytes: int = 0

    @property
    def training_memory_estimate(self) -> int:
        # weights + gradients + two Adam moments, and the activations autograd keeps for the backward pass.
        return 4 * self.param_bytes + self.activation_bytes


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def summarize(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224), batch_size: int = 1) -> Summary:
    """Run one forward pass of a random batch and collect the summary (the model is left in its original mode)."""
    rows, activation_bytes, hooks = [], [0], []
    own_params = {}
    for name, module in model.named_modules():
        if not _is_leaf(module):
            continue
        params = list(module.parameters(recurse=False))
        own_params[name] = params

        def hook(mod, _inputs, output, name=name, params=params):
            tensors = [output] if isinstance(output, torch.Tensor) else [t for t in output_tensors(output)]
            shape = tuple(tensors[0].shape) if len(tensors) == 1 else tuple(tuple(t.shape) for t in tensors)
            activation_bytes[0] += sum(t.numel() * t.element_size() for t in tensors)
            rows.append(LayerRow(name, type(mod).__name__, shape, sum(p.numel() for p in params),
                                 any(p.requires_grad for p in params)))
        hooks.append(module.register_forward_hook(hook))

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(batch_size, *input_size, device=device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    params = list(model.parameters())
    return Summary(
        model_name=getattr(model, "model_name", type(model).__name__), input_size=tuple(input_size), rows=rows,
        stem=getattr(model, "stem_type", "imagenet"),
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        flops=counter.get_total_flops() // batch_size, activation_bytes=activation_bytes[0] // batch_size,
        param_bytes=sum(p.numel() * p.element_size() for p in params))


def output_tensors(output):
    """Every tensor in a module's output (a tensor, or lists, tuples and dicts of them)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from output_tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from output_tensors(item)


def render(summary: Summary, max_rows: int | None = None) -> None:
    """Print the summary as a rich table followed by the totals."""
    from backbonekit.io.console import make_console
    from rich.table import Table

    stem = f"  stem {summary.stem}" if summary.stem != "imagenet" else ""
    table = Table(title=f"{summary.model_name}{stem}  input {tuple(summary.input_size)}", show_lines=False)
    for column, justify in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right")):
        table.add_column(column, justify=justify)
    rows = summary.rows if max_rows is None else summary.rows[:max_rows]
    for row in rows:
        shape = "×".join(map(str, row.output_shape[1:])) if row.output_shape and isinstance(row.output_shape[0], int) \
            else str(row.output_shape)
        table.add_row(row.name, row.type, shape, f"{row.params:,}" if row.params else "")
    console = make_console()
    console.print(table)
    if max_rows is not None and len(summary.rows) > max_rows:
        console.print(f"… {len(summary.rows) - max_rows} more layers")
    mib = 1024 ** 2
    console.print(
        f"params: {summary.total_params:,} (trainable {summary.trainable_params:,}), "
        f"{summary.param_bytes / mib:.1f} MiB\n"
        f"FLOPs per image: {summary.flops / 1e9:.3f} G (= {summary.flops / 2e9:.3f} G multiply-adds)\n"
        f"activations per image (forward, all layer outputs): {summary.activation_bytes / mib:.1f} MiB\n"
        f"training memory per image ≈ 4 × params (weights, grads, Adam) + activations: "
        f"{summary.training_memory_estimate / mib:.1f} MiB at batch 1")
