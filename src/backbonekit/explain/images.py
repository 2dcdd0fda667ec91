"""The images an explanation is drawn for: decoded one at a time (an unreadable one named, or skipped with
``--skip-bad-images``), and output file names that stay apart when two folders hold the same file name."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from PIL import Image

from backbonekit.io.images import find_images, read_in_batches, report_skipped


def each_image(paths: list[str], skip_bad: bool) -> Iterator[tuple[Path, Image.Image]]:
    skipped: list = []
    for batch in read_in_batches(find_images(paths), 1, skip_bad, skipped):
        yield batch[0]
    report_skipped(skipped)


def output_name(path: Path, taken: set[str], suffix: str) -> str:
    """``<stem><suffix>``; a second image with the same stem gets ``<stem>-2<suffix>`` and so on."""
    name, n = f"{path.stem}{suffix}", 1
    while name in taken:
        n += 1
        name = f"{path.stem}-{n}{suffix}"
    taken.add(name)
    return name
