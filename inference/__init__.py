"""Analysis: voice activity, speech windows and the ONNX model runtime.

Imports `alerts` (downstream) for shared data types; never imports `streamer`.
"""
