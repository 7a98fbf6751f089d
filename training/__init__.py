"""Training of the clonewatch synthetic-voice detector (PyTorch; optional `[train]` extra).

Run `python -m training --help`. Steps: decode and cache the corpus, render channel-simulated
crops for both classes alike, train a small CNN over an in-graph spectrogram, validate on
held-out speakers and held-out generator families, export to ONNX with a parity check.
"""
