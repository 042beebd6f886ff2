"""The error type of bad user input, shared by the checks of every door."""


class InputError(ValueError):
    """Bad user input (path, checkpoint, data root); the message says what to fix."""
