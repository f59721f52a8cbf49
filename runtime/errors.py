"""Errors a user of the runtime can cause; the CLI turns them into one line on stderr and exit code 2."""

from train.errors import UserError

__all__ = ["UserError", "ModelError", "SourceError", "TaskError"]


class ModelError(UserError):
    """A model file is missing, unreadable, without its sidecar, or built for another GPU or TensorRT."""


class SourceError(UserError):
    """A video source cannot be opened or read (missing file, not a video, no such camera, bad URL)."""


class TaskError(UserError):
    """A model was given to a task it does not do (a low-light model to ``relight``)."""
