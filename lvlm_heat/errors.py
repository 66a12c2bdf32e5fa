"""The one exception type for problems a user can fix (bad path, bad model, bad value)."""


class LvlmHeatError(Exception):
    """An error with a message that says what is wrong and what to do.

    The command line prints the message as one line and exits non-zero, with no stack trace.
    """
