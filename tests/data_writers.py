"""Writers of small data sets in their true on-disk formats, shared by the tests."""
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class=6, size=20, seed=0, fmt="png"):
    """Class-coloured noise images: learnable, and real files in a real ImageFolder layout."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            img[..., c % 3] += 180
            Image.fromarray(img).save(root / name / f"{i:03d}.{fmt}")
    return root


def write_cifar10(root: Path, per_batch=4, seed=0, skip=()):
    """The official python-pickle CIFAR-10 layout, with few images per batch."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in files:
        if name in skip:
            continue
        labels = [int(x) for x in rng.integers(0, 10, per_batch)]
        data = rng.integers(0, 255, (per_batch, 3072), dtype=np.uint8)
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f)
    return root


def write_idx(root: Path, n_train=40, n_test=20, size=28, gz=True, seed=0, num_classes=10):
    """The four IDX files of the MNIST family (big-endian headers, uint8 data), every class present; the images
    hold their label as a brightness pattern, so a model can learn them. Returns ``root``."""
    import gzip
    import struct

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % num_classes
        images = rng.integers(0, 60, (n, size, size), dtype=np.uint8)
        for i, y in enumerate(labels):
            images[i, : size * (int(y) + 1) // num_classes] += 150
        for kind, header, data in (("images-idx3", struct.pack(">4I", 2051, n, size, size), images),
                                   ("labels-idx1", struct.pack(">2I", 2049, n), labels)):
            name = root / f"{prefix}-{kind}-ubyte"
            payload = header + data.tobytes()
            if gz:
                (root / (name.name + ".gz")).write_bytes(gzip.compress(payload))
            else:
                name.write_bytes(payload)
    return root
