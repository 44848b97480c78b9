"""User-facing errors.

Anything a user can fix (a bad file, a bad option, a bundle that fails verification)
raises `SineError` with a message that says what to do. The CLI prints the message and
exits with status 2 instead of showing a traceback; the service maps it to HTTP 4xx.
"""


class SineError(Exception):
    """An error caused by input the user controls; the message says how to fix it."""


class DataError(SineError):
    """The interaction log cannot be read or is unusable for training."""


class BundleError(SineError):
    """A model bundle is missing, incomplete, tampered with or of an unknown format."""
