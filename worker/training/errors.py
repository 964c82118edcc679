"""Errors of the training engine; the input ones are ValueErrors the API answers with 422."""


class TrainingInputError(ValueError):
    """The request cannot be trained as given; the message says what to change."""


class ConfigError(TrainingInputError):
    """A hyper-parameter, mode or base model out of range."""


class DatasetError(TrainingInputError):
    """The labelled images cannot make a training set (too few classes, an empty class, ...)."""


class CheckpointMismatch(TrainingInputError):
    """A checkpoint directory holds a run of another configuration or dataset."""


class CustomModelError(Exception):
    """A saved custom model that cannot be loaded (missing file, SHA-256 mismatch, bad metadata)."""
