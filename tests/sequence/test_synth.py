import numpy as np
import pytest

from backbonekit.sequence import synth
from backbonekit.sequence.data import SeqDeepFakeDataset, read_annotations
from backbonekit.sequence.vocab import label_to_name


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, synth_root):
    synth.synthesize_seqdeepfake(tmp_path / "a", "facial_components", num_images=24, seed=0, image_size=64)
    synth.synthesize_seqdeepfake(tmp_path / "b", "facial_components", num_images=24, seed=1, image_size=64)
    again = _files(tmp_path / "a")
    assert again == {k: v for k, v in _files(synth_root).items() if k.startswith("facial_components/")}
    assert again != _files(tmp_path / "b")


@pytest.mark.parametrize("subset", ["facial_components", "facial_attributes"])
def test_layout_and_labels(synth_root, subset):
    total = 0
    for split in ("train", "val", "test"):
        rows = read_annotations(synth_root / subset / "annotations" / f"{split}.csv")
        total += len(rows)
        for file_path, label, _ in rows:
            parts = file_path.split("/")
            assert parts[:3] == [subset, "images", split] and parts[3] == label_to_name(label, subset)
            assert len(parts[4]) == len("000000.jpg") and (synth_root / file_path).is_file()
        SeqDeepFakeDataset(synth_root, subset, split)  # strict reader accepts it
    assert total == 24


def test_order_and_identity_are_visible():
    size = 64
    rng = np.random.default_rng(0)
    base = synth._base_image(synth._photo_pool(), rng, size)
    masks = {e: synth._region_mask(synth.REGIONS["facial_components"][e], size) for e in (1, 2)}
    tex = {e: synth._texture(e, size) for e in (1, 2)}

    def edit(order):
        img = base.copy()
        for step, e in enumerate(order):
            img = synth._apply_edit(img, masks[e], tex[e], synth.STEP_COLOURS[step], np.random.default_rng(1))
        return img

    nose_eye, eye_nose, nose = edit([1, 2]), edit([2, 1]), edit([1])
    assert np.abs(nose_eye - eye_nose).mean() > 5  # same edits, other order: other image
    assert np.abs(nose - base).mean() > 2
    assert (masks[1] * masks[2]).sum() > 0  # nose and eye regions overlap: the later edit paints over the earlier
