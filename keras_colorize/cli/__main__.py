"""`python -m keras_colorize.cli ...`: the `keras-colorize` command."""

from keras_colorize.cli.app import main

if __name__ == "__main__":
    main()
