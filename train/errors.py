"""Errors a user can cause. Command-line entry points turn these into one line on stderr and exit 2."""


class UserError(ValueError):
    """Bad input from the user: a path, a file's content, an option value."""


class DatasetError(UserError):
    """A dataset is missing, incomplete or inconsistent."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or not an edgelight checkpoint."""
