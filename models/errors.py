"""Errors raised while getting a model. Each message says what a person can do about it."""


class ModelLoadError(ValueError):
    """The model could not be loaded: not a model, missing weights offline, bad class names..."""


class UnsafeModelError(ModelLoadError):
    """The uploaded file was refused before Keras read it (it could run code or exhaust memory)."""
