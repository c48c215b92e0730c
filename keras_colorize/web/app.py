"""The local web app: upload a photo or a film, get it colorized, compare and download.

A Gradio page with two tabs. "Photo": a photo in, a before/after slider
(`gr.ImageSlider`) and a download button for the full-resolution PNG. "Video": a film
in, the colorized film (H.264 MP4, audio kept, stabilised over time) to play and
download. The model's options sit above the tabs: the model size where the model takes
one, and for an InstructPix2Pix preset the instruction, sampling steps, guidance scales
and seed.

Everything the app writes (uploads, results) goes into one temporary folder, removed
when the app stops. It listens on 127.0.0.1 unless told otherwise, and sends nothing
anywhere (Gradio's analytics are turned off).
"""

import atexit
import functools
import importlib.util
import inspect
import os
import shutil
import tempfile
import types
from pathlib import Path

from keras_colorize.errors import UserInputError, first_line

APP_INSTALL = 'pip install "keras-colorize[app]"'
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Largest photo the app takes, in megapixels (the command line takes any size).
MAX_PHOTO_MEGAPIXELS = 60
# Largest upload, as Gradio reads it.
MAX_UPLOAD = "2gb"
# Model sizes offered for models that take several (multiples of the model's divisor are kept).
MODEL_SIZES = (128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768)


def require_gradio():
    """A one-line error that says how to install Gradio, unless it is installed (nothing is imported)."""
    if importlib.util.find_spec("gradio") is None:
        raise UserInputError(f"the web app needs Gradio: {APP_INSTALL}")


def import_gradio():
    """Gradio (analytics off), or a one-line error that says how to install it."""
    require_gradio()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio

    return gradio


class AppModel:
    """A colorizer and the options the app offers for it.

    Args:
        model: a colorizer from `load_photo_colorizer` (a Keras `Colorizer`, an
            exported SavedModel or ONNX file, or an InstructPix2Pix `DiffusionColorizer`).
        name: str. What the page calls the model.

    Attributes:
        sizes: list of int. Model sizes offered (empty: the model has one size).
        default_size: int or None. The model's own size.
        is_diffusion: bool. An InstructPix2Pix preset (prompt, steps, guidance, seed).
    """

    def __init__(self, model, name):
        self.model = model
        self.name = name
        self.is_diffusion = hasattr(model, "pipeline")
        self.sizes, self.default_size = _size_options(model, self.is_diffusion)

    def settings(self, size=None, prompt=None, steps=None, guidance=None, image_guidance=None, seed=None):
        """The keyword arguments of one colorization (options the model does not take are dropped)."""
        if self.is_diffusion:
            defaults = self.model.settings
            return {
                "size": int(size or self.default_size),
                "prompt": defaults["prompt"] if prompt is None else prompt,
                "steps": int(steps or defaults["steps"]),
                "guidance": defaults["guidance"] if guidance is None else float(guidance),
                "image_guidance": defaults["image_guidance"] if image_guidance is None else float(image_guidance),
                "seed": 0 if seed is None else int(seed),
            }
        return {"image_size": int(size)} if self.sizes and size else {}

    def colorize(self, image, **settings):
        """Colorize one photo (uint8 sRGB (H, W, 3)) with `settings` from `settings()`."""
        if self.is_diffusion:
            return self.model.pipeline.colorize(image, **settings)
        return self.model.colorize(image, **settings)

    def frame_colorizer(self, **settings):
        """An object `colorize_video` takes: every frame colorized with the same settings (batched where possible)."""
        frames = types.SimpleNamespace(colorize=functools.partial(self.colorize, **settings))
        if not self.is_diffusion and hasattr(self.model, "colorize_batch"):
            frames.colorize_batch = functools.partial(self.model.colorize_batch, **settings)
        return frames


def _size_options(model, is_diffusion):
    """(sizes offered, default size) of a model."""
    if is_diffusion:
        multiple = model.pipeline.size_multiple
        return [size for size in MODEL_SIZES if size % multiple == 0], model.image_size[0]
    generator = getattr(model, "generator", None)
    takes_size = "image_size" in inspect.signature(model.colorize).parameters
    if generator is None or not takes_size or getattr(generator, "image_size", None) is not None:
        size = getattr(model, "image_size", None)
        return [], (size[0] if size else None)
    divisor = int(getattr(generator, "size_divisor", 1) or 1)
    sizes = sorted({size for size in MODEL_SIZES if size % divisor == 0} | {model.image_size[0]})
    return sizes, model.image_size[0]


def read_photo(path):
    """An uploaded photo as uint8 sRGB (H, W, 3), else a one-line error (not an image, corrupt, too large)."""
    from PIL import Image, UnidentifiedImageError

    from keras_colorize.data import load_image

    name = Path(path).name
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise UserInputError(f"{name}: not an image (upload a JPEG, PNG, WebP, TIFF, BMP or GIF photo)") from None
    if width * height > MAX_PHOTO_MEGAPIXELS * 1_000_000:
        raise UserInputError(
            f"{name}: {width}x{height} is more than {MAX_PHOTO_MEGAPIXELS} megapixels; "
            "colorize it with `keras-colorize colorize` instead"
        )
    try:
        return load_image(path)
    except UserInputError as error:
        raise UserInputError(first_line(error).replace(str(path), name)) from None


def build_interface(app_model, results):
    """The Gradio page (a `gr.Blocks`) for `app_model`, writing its results into the folder `results`.

    Its two events are also API endpoints: `/colorize_photo` (photo file, size,
    prompt, steps, guidance, image guidance, seed -> (before, after) images and the
    PNG) and `/colorize_film` (video file, stabilise, strength, size, prompt, steps,
    guidance, image guidance, seed -> the MP4 twice: to play and to download).
    """
    gr = import_gradio()
    from PIL import Image

    from keras_colorize.data.files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
    from keras_colorize.video import colorize_video, stabilizer_for
    from keras_colorize.video.stabilization import DEFAULT_STRENGTH

    results = Path(results)
    diffusion = app_model.is_diffusion
    defaults = app_model.settings() if diffusion else {}

    def colorize_photo(path, size, prompt, steps, guidance, image_guidance, seed):
        if not path:
            raise gr.Error("Upload a photo first.")
        try:
            image = read_photo(path)
            result = app_model.colorize(image, **app_model.settings(size, prompt, steps, guidance, image_guidance, seed))
        except UserInputError as error:
            raise gr.Error(first_line(error)) from None
        target = _result_path(results, path, ".png")
        Image.fromarray(result).save(target)
        return (image, result), gr.DownloadButton(value=str(target), visible=True)

    def colorize_film(path, stabilize, strength, size, prompt, steps, guidance, image_guidance, seed):
        if not path:
            raise gr.Error("Upload a video first.")
        if Path(path).suffix.lower() not in VIDEO_EXTENSIONS:
            raise gr.Error(f"{Path(path).name}: not a video the app reads ({', '.join(VIDEO_EXTENSIONS)})")
        target = _result_path(results, path, ".mp4")
        stabilizer = stabilizer_for(stabilize, strength)
        settings = app_model.settings(size, prompt, steps, guidance, image_guidance, seed)
        try:
            colorize_video(app_model.frame_colorizer(**settings), path, target, stabilizer=stabilizer)
        except UserInputError as error:
            raise gr.Error(first_line(error).replace(str(path), Path(path).name)) from None
        return str(target), gr.DownloadButton(value=str(target), visible=True)

    with gr.Blocks(title="keras-colorize") as interface:
        gr.Markdown(f"# keras-colorize\nModel: `{app_model.name}`. Photos and films are colorized on this machine.")
        with gr.Accordion("Options", open=diffusion):
            size = gr.Dropdown(
                choices=app_model.sizes or [size for size in [app_model.default_size] if size],
                value=app_model.default_size,
                allow_custom_value=True,  # an API client may ask for any size; the model checks it
                label="Model size (pixels): the photo is seen at this size, its colour applied at full resolution",
                visible=bool(app_model.sizes),
            )
            prompt = gr.Textbox(value=defaults.get("prompt"), label="Instruction", visible=diffusion)
            with gr.Row(visible=diffusion):
                steps = gr.Slider(1, 100, value=defaults.get("steps", 20), step=1, label="Sampling steps")
                guidance = gr.Slider(0.0, 20.0, value=defaults.get("guidance", 7.0), step=0.5, label="Text guidance")
                image_guidance = gr.Slider(
                    0.0, 5.0, value=defaults.get("image_guidance", 1.5), step=0.1, label="Image guidance"
                )
                seed = gr.Number(value=defaults.get("seed", 0), precision=0, label="Seed")
        options = [size, prompt, steps, guidance, image_guidance, seed]
        with gr.Tab("Photo"):
            with gr.Row():
                photo = gr.File(
                    label="Photo", file_types=list(IMAGE_EXTENSIONS), type="filepath", elem_id="photo-upload"
                )
                slider = gr.ImageSlider(label="Before / after", type="numpy", elem_id="before-after")
            photo_button = gr.Button("Colorize", variant="primary", elem_id="colorize-photo")
            photo_download = gr.DownloadButton("Download the colorized photo", visible=False)
            photo_button.click(
                colorize_photo, [photo, *options], [slider, photo_download], api_name="colorize_photo"
            )
        with gr.Tab("Video"):
            with gr.Row():
                film = gr.Video(label="Film", sources=["upload"], include_audio=True)
                film_result = gr.Video(label="Colorized film")
            with gr.Row():
                stabilize = gr.Checkbox(value=True, label="Stabilise the colour over time")
                strength = gr.Slider(0.0, 0.95, value=DEFAULT_STRENGTH, step=0.05, label="Stabilisation strength")
            film_button = gr.Button("Colorize the film", variant="primary")
            film_download = gr.DownloadButton("Download the colorized film", visible=False)
            film_button.click(
                colorize_film, [film, stabilize, strength, *options], [film_result, film_download], api_name="colorize_film"
            )
    return interface


def _result_path(results, upload, suffix):
    """A new file in `results` named after the upload."""
    folder = Path(tempfile.mkdtemp(dir=results))
    return folder / f"{Path(upload).stem}_colorized{suffix}"


def launch(app_model, host=DEFAULT_HOST, port=DEFAULT_PORT, block=True):
    """Serve the app; every upload and result goes into one temporary folder, removed at exit.

    Gradio reads its upload folder when it is first imported: imported earlier in the
    process, it keeps its own (`GRADIO_TEMP_DIR`, else the system's temporary folder).

    Args:
        app_model: AppModel.
        host: str. Address to listen on. Defaults to "127.0.0.1" (this machine only).
        port: int. Port. Defaults to 7860.
        block: bool. Serve until interrupted. Defaults to True; False returns at once
            (the app runs in a thread).

    Returns:
        (gr.Blocks, str): the running app and its URL.
    """
    workspace = Path(tempfile.mkdtemp(prefix="keras-colorize-app-"))
    atexit.register(shutil.rmtree, workspace, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = str(workspace / "uploads")
    results = workspace / "results"
    results.mkdir()
    interface = build_interface(app_model, results)
    try:
        interface.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=not block,
            allowed_paths=[str(results)],
            max_file_size=MAX_UPLOAD,
            show_error=True,
            quiet=not block,
        )
    except OSError as error:
        raise UserInputError(f"cannot serve on {host}:{port} ({first_line(error)})") from None
    return interface, interface.local_url
