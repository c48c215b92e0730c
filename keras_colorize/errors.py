"""Errors that report a user's mistake in one line (the CLI prints them and exits with status 2)."""


class UserInputError(ValueError):
    """Bad user input: a file, folder, recipe key or argument. The message is one line."""
