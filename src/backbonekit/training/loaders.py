"""The data loaders every task trains and validates with, and the one last-batch rule."""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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
    train_loader = ResumableLoader(train, batch_size=batch_size, sampler=ResumableSampler(len(train)),
                                   collate_fn=collate_fn, drop_last=drop_last_batch(len(train), batch_size, mixing),
                                   **common)
    # Validation is never mixed: it takes its own collate, or the training one when that does not mix.
    val_collate = val_collate_fn if val_collate_fn is not None else (None if mixing else collate_fn)
    val_loader = DataLoader(val, batch_size=batch_size, shuffle=False, collate_fn=val_collate, **common)
    return train_loader, val_loader


class ResumableSampler(Sampler[int]):
    """RandomSampler's order (each epoch a permutation from a seed drawn from torch's global generator: the same
    numbers, so runs shuffle as before), with the seed kept so that a run resumed in the middle of an epoch goes on
    with the same permutation where it stopped instead of a new one (images seen twice, others never)."""

    def __init__(self, n: int):
        self.n = n
        self.seed: int | None = None
        self._resume: tuple[int, int] | None = None  # (seed, items already trained) of the interrupted epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self._resume is not None:
            (self.seed, skip), self._resume = self._resume, None
        else:
            self.seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        yield from torch.randperm(self.n, generator=generator).tolist()[skip:]


class ResumableLoader(DataLoader):
    """Training batches whose position Lightning saves in every checkpoint (``state_dict``) and restores when a run
    resumes mid-epoch. The position is the batches trained, set by the engine as each starts: what the loader has
    handed out runs ahead of it (prefetching, workers)."""

    batches_done = 0

    def state_dict(self) -> dict:
        return {"seed": getattr(self.sampler, "seed", None), "batches": self.batches_done}

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.sampler, ResumableSampler) and state.get("seed") is not None:
            self.sampler._resume = (int(state["seed"]), int(state["batches"]) * (self.batch_size or 1))
