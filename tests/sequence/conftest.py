import pytest

from backbonekit.sequence.synth import synthesize_seqdeepfake


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic SeqDeepFake (both subsets, 24 images each, 64 px), written once per session."""
    root = tmp_path_factory.mktemp("seqdeepfake")
    for subset in ("facial_components", "facial_attributes"):
        synthesize_seqdeepfake(root, subset, num_images=24, seed=0, image_size=64)
    return root
