"""The two SeqDeepFake subsets: manipulation ids, their names, and the token ids the decoder reads and writes.

A label is a list of ``MAX_EDITS`` ids in the order the edits were applied, padded with 0 (NA); all zeros is an
unmanipulated ("original") image. Sequence names join the edit names with "-", as the official image folders do.
"""
from __future__ import annotations

from typing import Sequence

from backbonekit.errors import ConfigError
from backbonekit.models.captions import EOS, MAX_EDITS, NUM_POSITIONS, PAD, SOS, VOCAB_SIZE  # noqa: F401 (re-export)

from backbonekit.sequence.subsets import SUBSETS  # noqa: F401 (re-export)

NUM_EDIT_TYPES = 5  # ids 1..5 in both subsets
ORIGINAL = "original"



def edit_names(subset: str) -> tuple[str, ...]:
    """Names indexed by id (0 = NA)."""
    try:
        return SUBSETS[subset]
    except KeyError:
        raise ConfigError(f"unknown SeqDeepFake subset {subset!r}; choose from {', '.join(SUBSETS)}") from None


def sequence_length(label: Sequence[int]) -> int:
    """Number of edits: the ids before the first 0."""
    n = 0
    for i in label:
        if int(i) == 0:
            break
        n += 1
    return n


def label_to_name(label: Sequence[int], subset: str = "facial_components") -> str:
    """``[1, 2, 0, 0, 0]`` → ``"nose-eye"``; all zeros → ``"original"``."""
    names = edit_names(subset)
    ids = [int(i) for i in label[: sequence_length(label)]]
    return "-".join(names[i] for i in ids) if ids else ORIGINAL


def name_to_label(name: str, subset: str = "facial_components") -> list[int]:
    """Inverse of :func:`label_to_name` (case-insensitive): ``"nose-eye"`` → ``[1, 2, 0, 0, 0]``."""
    names = [n.lower() for n in edit_names(subset)]
    if name.strip().lower() == ORIGINAL:
        return [0] * MAX_EDITS
    parts = [p.strip().lower() for p in name.split("-")]
    if len(parts) > MAX_EDITS:
        raise ConfigError(f"sequence {name!r} has {len(parts)} edits; at most {MAX_EDITS}")
    ids = []
    for p in parts:
        if p not in names[1:]:
            raise ConfigError(f"unknown edit {p!r} in {name!r}; {subset} edits are {', '.join(names[1:])}")
        ids.append(names.index(p))
    return ids + [0] * (MAX_EDITS - len(ids))
