import pytest
import torch

from backbonekit.errors import ConfigError
from backbonekit.models.captions import build_captions, causal_mask, decoder_io, padding_mask, tokens_to_labels
from backbonekit.sequence.vocab import EOS, PAD, SOS, SUBSETS, VOCAB_SIZE, label_to_name, name_to_label


def test_token_ids():
    assert (SOS, EOS, PAD, VOCAB_SIZE) == (0, 6, 7, 8)


@pytest.mark.parametrize("subset,label,name", [
    ("facial_components", [1, 2, 0, 0, 0], "nose-eye"),
    ("facial_components", [5, 4, 3, 2, 1], "hair-lip-eyebrow-eye-nose"),
    ("facial_components", [0, 0, 0, 0, 0], "original"),
    ("facial_attributes", [1, 2, 3, 4, 5], "Bangs-Eyeglasses-Beard-Smiling-Young"),
    ("facial_attributes", [4, 0, 0, 0, 0], "Smiling"),
])
def test_names_round_trip(subset, label, name):
    assert label_to_name(label, subset) == name
    assert name_to_label(name, subset) == label
    assert name_to_label(name.lower(), subset) == label


def test_both_vocabularies():
    assert SUBSETS["facial_components"] == ("NA", "nose", "eye", "eyebrow", "lip", "hair")
    assert SUBSETS["facial_attributes"] == ("NA", "Bangs", "Eyeglasses", "Beard", "Smiling", "Young")
    with pytest.raises(ConfigError, match="unknown edit"):
        name_to_label("nose-Bangs", "facial_components")
    with pytest.raises(ConfigError, match="unknown SeqDeepFake subset"):
        label_to_name([1, 0, 0, 0, 0], "faces")


@pytest.mark.parametrize("label,caption,inputs,target", [
    ([0, 0, 0, 0, 0], [0, 6, 7, 7, 7, 7, 7], [0, 7, 7, 7, 7, 7], [6, 7, 7, 7, 7, 7]),    # original
    ([1, 2, 4, 0, 0], [0, 1, 2, 4, 6, 7, 7], [0, 1, 2, 4, 7, 7], [1, 2, 4, 6, 7, 7]),    # short (the paper's example)
    ([3, 0, 0, 0, 0], [0, 3, 6, 7, 7, 7, 7], [0, 3, 7, 7, 7, 7], [3, 6, 7, 7, 7, 7]),
    ([1, 2, 4, 3, 5], [0, 1, 2, 4, 3, 5, 6], [0, 1, 2, 4, 3, 5], [1, 2, 4, 3, 5, 6]),    # full: EOS never read
])
def test_captions(label, caption, inputs, target):
    assert build_captions(torch.tensor([label])).tolist() == [caption]
    x, y = decoder_io(torch.tensor([label, label]))
    assert x.tolist() == [inputs] * 2 and y.tolist() == [target] * 2


def test_masks():
    m = causal_mask(3)
    assert m.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    assert padding_mask(torch.tensor([[0, 1, 7]])).tolist() == [[False, False, True]]


def test_tokens_to_labels_stops_at_first_non_edit():
    tokens = torch.tensor([[1, 2, 6, 3, 7], [6, 1, 1, 1, 1], [5, 4, 3, 2, 1], [2, 7, 7, 7, 7], [3, 0, 2, 7, 7]])
    assert tokens_to_labels(tokens).tolist() == [[1, 2, 0, 0, 0], [0] * 5, [5, 4, 3, 2, 1], [2, 0, 0, 0, 0],
                                                 [3, 0, 0, 0, 0]]
