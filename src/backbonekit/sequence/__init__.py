"""SeqDeepFake: predicting the ordered sequence of facial manipulations with SeqFakeFormer.

vocab (ids and names) → captions (teacher forcing) → data (official CSVs) → transformer + seqfakeformer (the model) →
metrics (Fixed-Acc / Adaptive-Acc); synth writes a small learnable stand-in for the data set.
"""
