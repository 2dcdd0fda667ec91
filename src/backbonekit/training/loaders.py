"""The data loaders every task trains and validates with, and the one last-batch rule."""
from __future__ import annotations

from typing import Callable

from torch.utils.data import DataLoader, Dataset


def drop_last_batch(num_items: int, batch_size: int, mixing: bool = False) -> bool:
    """Whether training drops the last, incomplete batch: when it would hold a single image (BatchNorm then trains on
    one sample, which is noise, and fails outright on a 1×1 map) or when batches are mixed (CutMix/MixUp pair images
    within a batch). Never when that would leave no batch at all."""
    if num_items <= batch_size:
        return False
    return mixing or num_items % batch_size == 1


def make_loaders(train: Dataset, val: Dataset, batch_size: int, *, workers: int = 0,
                 collate_fn: Callable | None = None, val_collate_fn: Callable | None = None,
                 mixing: bool = False) -> tuple[DataLoader, DataLoader]:
    """Shuffled training batches (with the last-batch rule) and validation batches in order."""
    common = dict(num_workers=workers, persistent_workers=workers > 0)
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=collate_fn,
                              drop_last=drop_last_batch(len(train), batch_size, mixing), **common)
    # Validation is never mixed: it takes its own collate, or the training one when that does not mix.
    val_collate = val_collate_fn if val_collate_fn is not None else (None if mixing else collate_fn)
    val_loader = DataLoader(val, batch_size=batch_size, shuffle=False, collate_fn=val_collate, **common)
    return train_loader, val_loader
