"""Atomic writes: a file appears whole, or not at all, and an old one stays until then.

Checkpoints, run state, reports and converted weights are written to a temporary file in
the target's folder, then moved over the target with `os.replace`. The new file gets the
permissions an ordinary `open()` would give it (0666 less the umask). Exports and
presets (files or folders) are written inside a temporary sibling folder and renamed
into place (`atomic_output`).
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from keras_colorize.errors import UserInputError


def _current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_file(path):
    """Write a file atomically.

    Yields a temporary path in the same folder (same suffix, so writers that look at
    the extension work); when the block ends without an error it replaces `path`,
    otherwise it is removed and `path` is left untouched.

    Args:
        path: str or Path. The file to (re)write.

    Examples:
        >>> from keras_colorize.atomic_files import atomic_file
        >>> with atomic_file("state.json") as tmp:
        ...     _ = tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes the file private (0600)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path, data):
    """Write `data` as indented JSON, atomically.

    Args:
        path: str or Path. The `.json` file.
        data: a JSON-serialisable object.
    """
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def check_output(path, overwrite):
    """Refuse an existing output unless `overwrite`.

    Raises:
        UserInputError: `path` exists and `overwrite` is False.
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise UserInputError(f"{path}: already exists; pass --overwrite (overwrite=True) to replace it")


@contextlib.contextmanager
def atomic_output(path, overwrite=False):
    """Write a file or folder next to `path`, then move it into place.

    Yields the path to write (inside a temporary sibling folder, same name). When
    the block succeeds it replaces `path` (an existing `path` only with
    `overwrite`); when it fails nothing is left behind and `path` is untouched.

    Args:
        path: str or Path. The file or folder to create.
        overwrite: bool. Replace an existing `path`. Defaults to False.
    """
    path = Path(path)
    check_output(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    target = staging / path.name
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"{path}: nothing was written")
        check_output(path, overwrite)
        if path.exists() or path.is_symlink():
            previous = staging / ".previous"
            os.rename(path, previous)
            try:
                os.rename(target, path)
            except BaseException:
                os.rename(previous, path)
                raise
        else:
            os.rename(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
