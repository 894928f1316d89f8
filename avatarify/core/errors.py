"""User-facing errors: each carries one line that says what went wrong and what to do."""


class AvatarifyError(Exception):
    """An error caused by the user's input or environment, reported as one line without a traceback."""


class CheckpointError(AvatarifyError):
    """A model checkpoint is missing, unreadable, unsafe or does not fit the model configuration."""


class InputError(AvatarifyError):
    """An image, video or output path the user gave cannot be used."""


class EngineUnavailable(AvatarifyError):
    """The engine cannot animate this frame now (a remote worker is away or has not answered yet).

    The real-time loop keeps the last avatar frame on screen meanwhile; it never sends the camera instead
    unless the user chose that.
    """
