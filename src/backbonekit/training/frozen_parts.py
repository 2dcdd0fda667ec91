"""Parts of a model that stay as loaded while the rest trains (a frozen backbone, frozen BatchNorm statistics)."""
from __future__ import annotations


class HoldsFrozenParts:
    """LightningModule mixin: ``hold_frozen_parts()`` (the task's own: which parts, how) is applied again after every
    ``train()`` and at each training epoch's start, since Lightning sets sub-module modes itself (not only through
    ``train()``) and would otherwise put a frozen backbone's BatchNorm back into training mode."""

    def hold_frozen_parts(self) -> None:
        """Put the frozen parts in eval mode without gradients; nothing by default."""

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self.hold_frozen_parts()
        return self

    def on_train_epoch_start(self) -> None:
        self.hold_frozen_parts()
