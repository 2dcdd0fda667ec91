"""The two SeqDeepFake subsets and their edit names by id (0 = NA). Plain data: the command line reads it without
importing torch."""

SUBSETS: dict[str, tuple[str, ...]] = {
    "facial_components": ("NA", "nose", "eye", "eyebrow", "lip", "hair"),
    "facial_attributes": ("NA", "Bangs", "Eyeglasses", "Beard", "Smiling", "Young"),
}
