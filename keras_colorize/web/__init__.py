"""The local web app: colorize photos and films in a browser (`keras-colorize app`, Gradio)."""

from keras_colorize.web.app import DEFAULT_HOST, DEFAULT_PORT, AppModel, build_interface, launch

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "AppModel", "build_interface", "launch"]
