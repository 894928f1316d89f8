"""User-facing errors: each carries one line that says what went wrong and what to do."""


class AvatarifyError(Exception):
    """An error caused by the user's input or environment, reported as one line without a traceback."""


class CheckpointError(AvatarifyError):
    """A model checkpoint is missing, unreadable, unsafe or does not fit the model configuration."""


class InputError(AvatarifyError):
    """An image, video or output path the user gave cannot be used."""
