"""Errors a user can cause. Command-line entry points turn them into one line on stderr and exit code 2."""

__all__ = ["UserError", "DatasetError", "CheckpointError", "ModelError", "SourceError", "TaskError", "SidecarError"]


class UserError(ValueError):
    """Bad input from the user: a path, a file's content, an option value."""


class DatasetError(UserError):
    """A dataset is missing, incomplete or inconsistent."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or not an edgelight checkpoint."""


class ModelError(UserError):
    """A model file is missing, unreadable, without its sidecar, or built for another GPU or TensorRT."""


class SidecarError(ModelError):
    """A sidecar is missing, unreadable or does not follow the schema."""


class SourceError(UserError):
    """A video source cannot be opened or read (missing file, not a video, no such camera, bad URL)."""


class TaskError(UserError):
    """A model was given to a task it does not do (a low-light model to ``relight``)."""
