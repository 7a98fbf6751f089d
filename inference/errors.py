"""Exceptions of the analysis stage; each is raised with the context that explains it."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class of every error raised by `inference`."""


class ManifestError(InferenceError, ValueError):
    """A model manifest (NAME.json) is missing a field or has a bad value.

    A `ValueError`, so callers validating input can catch it generically.
    """


class ModelMismatchError(InferenceError, ValueError):
    """The ONNX graph does not match its manifest (input/output names or ranks)."""


class RuntimeClosedError(InferenceError, RuntimeError):
    """A window was submitted to a model runtime that is closed (or was never started)."""
