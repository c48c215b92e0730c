"""`python -m keras_colorize.export CHECKPOINT OUT ...`: the export command on its own.

The export from a JAX- or PyTorch-backend process runs this in a TensorFlow-backend
subprocess. Errors are reported as by `keras-colorize`: one `error: <message>` line
and exit status 2.
"""

import os
import sys

import click


def main(argv=None):
    """Run the export command; user errors print one line and exit with status 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_colorize.cli.common import EXIT_USER_ERROR
    from keras_colorize.errors import UserInputError
    from keras_colorize.cli.export import export

    try:
        export.main(args=argv, prog_name="python -m keras_colorize.export", standalone_mode=False)
    except UserInputError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
