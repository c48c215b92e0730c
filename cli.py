"""Run the keras-colorize command line from a checkout: `python cli.py fit recipe.yaml`."""

from keras_colorize.cli import main

if __name__ == "__main__":
    main()
