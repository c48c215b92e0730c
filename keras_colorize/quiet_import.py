"""Import a module with the C++ start-up lines of TensorFlow hidden.

TensorFlow writes informational lines to file descriptor 2 before its logging is
configured, where no setting can silence them. `import_quietly` captures them during
the import and shows them only if the import fails.
"""

import importlib
import os
import sys
import tempfile


def import_quietly(name):
    """Import the module `name` with file descriptor 2 captured during the import.

    Args:
        name: str. A module name, e.g. "keras" or "tensorflow".

    Returns:
        The imported module.
    """
    if name in sys.modules:
        return sys.modules[name]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return importlib.import_module(name)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
