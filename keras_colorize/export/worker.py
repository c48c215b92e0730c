"""The TensorFlow-backend export process: `python -m keras_colorize.export.worker`.

Reads `{"jobs": [{"checkpoint", "path", "format", "image_size"?}], "overwrite"}` as
JSON on stdin, exports each job and prints its summary. A user error prints one
`error: <message>` line on stderr and exits with status 2.
"""

import json
import os
import sys


def main():
    """Run the export jobs read from stdin."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_colorize.cli.common import EXIT_USER_ERROR, import_keras_quietly
    from keras_colorize.errors import UserInputError

    request = json.loads(sys.stdin.read())
    try:
        import_keras_quietly()
        from keras_colorize.loading import load_colorizer
        from keras_colorize.export.core import export_colorizer

        for job in request["jobs"]:
            colorizer = load_colorizer(job["checkpoint"])
            info = export_colorizer(
                colorizer, job["path"], job["format"], image_size=job.get("image_size"), overwrite=request["overwrite"]
            )
            print(info.summary(), flush=True)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
