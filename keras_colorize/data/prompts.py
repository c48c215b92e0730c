"""Colorization instructions: the prompts an InstructPix2Pix fine-tuner is trained with.

A prompt file is UTF-8 text with one prompt a line; blank lines and lines starting
with `#` are ignored. The package ships `colorize_prompts.txt`, thirty ways of saying
"colorize the image". Training pairs are built on the fly: the photo is the target,
its gray version (L* kept, a* = b* = 0) the input, and one prompt is drawn per image
inside the training step.

Examples:
    >>> from keras_colorize.data.prompts import load_prompts
    >>> load_prompts()[0]
    'colorize the image'
"""

from pathlib import Path

from keras_colorize.errors import UserInputError

PACKAGED_PROMPTS = Path(__file__).with_name("colorize_prompts.txt")
"""The packaged prompt file."""


class PromptFileError(UserInputError):
    """A prompt file that is missing, unreadable or holds no prompt."""


def parse_prompts(text):
    """The prompts of a prompt file's text.

    Args:
        text: str. One prompt a line; blank lines and `#` comment lines are skipped,
            and runs of spaces inside a prompt become one space.

    Returns:
        A list of str, in file order.
    """
    prompts = []
    for line in text.splitlines():
        stripped = " ".join(line.split())
        if stripped and not stripped.startswith("#"):
            prompts.append(stripped)
    return prompts


def load_prompts(path=None):
    """Read a prompt file.

    Args:
        path: str, Path or None. A text file with one prompt a line (`#` comments and
            blank lines allowed). Defaults to None (the packaged colorization prompts).

    Returns:
        A list of str: the prompts, in file order, duplicates kept.

    Raises:
        PromptFileError: the file is missing, unreadable, or holds no prompt
            (one-line message naming the file).

    Examples:
        >>> from keras_colorize.data.prompts import load_prompts
        >>> len(load_prompts()) >= 30
        True
    """
    path = PACKAGED_PROMPTS if path is None else Path(path).expanduser()
    if not path.is_file():
        what = "not a file" if path.exists() else "prompt file not found"
        raise PromptFileError(f"{path}: {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PromptFileError(f"{path}: cannot read the prompt file ({error.__class__.__name__})") from None
    prompts = parse_prompts(text)
    if not prompts:
        raise PromptFileError(f"{path}: no prompts (one prompt a line; lines starting with # are comments)")
    return prompts


__all__ = ["PACKAGED_PROMPTS", "PromptFileError", "load_prompts", "parse_prompts"]
