"""Corpora for training: the synthetic default, text files, the Python stdlib, memmaps, HF.

Every corpus serves deterministic, resumable batches: `train_batch(step, B, T)` is a pure
function of (seed, step, B, T), so a run resumed at any step sees exactly the data it would
have seen. `scaling.data.corpus.Corpus` is the protocol they follow and
`scaling.data.build.build_corpus` builds the one a config names.
"""
