"""Errors that report a user's mistake in one line (the CLI prints them and exits with status 2)."""


class UserInputError(ValueError):
    """Bad user input: a file, folder, recipe key or argument. The message is one line."""


def first_line(error):
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class RecipeError(UserInputError):
    """A recipe problem: the one-line message names the file and the key."""
