"""Atomic writes: a file appears whole, or not at all, and an old one stays until then.

Checkpoints, run state, reports and converted weights are written to a temporary file in
the target's folder, then moved over the target with `os.replace`. The new file gets the
permissions an ordinary `open()` would give it (0666 less the umask).
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path


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
