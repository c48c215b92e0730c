"""The optional video dependencies, PyAV and OpenCV, imported in one place (the `video` extra)."""

from keras_colorize.errors import UserInputError

VIDEO_INSTALL = 'pip install "keras-colorize[video]"'


def import_av():
    """PyAV (FFmpeg in its wheels), or a one-line error that says how to install it."""
    try:
        import av
    except ImportError:
        raise UserInputError(f"reading and writing videos needs PyAV: {VIDEO_INSTALL}") from None
    return av


def import_cv2():
    """OpenCV (opencv-python-headless), or a one-line error that says how to install it."""
    try:
        import cv2
    except ImportError:
        raise UserInputError(f"optical flow needs OpenCV: {VIDEO_INSTALL}") from None
    return cv2
