"""The `keras-colorize app` command: the local web app (Gradio) for photos and films."""

from pathlib import Path

import click

from keras_colorize.cli.common import backend_option, check_model_argument, import_keras_quietly, select_backend
from keras_colorize.web.app import DEFAULT_HOST, DEFAULT_PORT


@click.command(name="app", short_help="A local web app: colorize photos and films in the browser.")
@click.argument("model", required=False, metavar="[MODEL]", type=click.Path(path_type=Path))
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to serve on (0.0.0.0: every network).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="Port to serve on.")
@backend_option
def web_app(model, host, port, backend):
    """Serve a web page that colorizes uploaded photos and films with MODEL.

    MODEL is what `colorize` takes as CHECKPOINT: a .keras checkpoint, a colorizer
    preset (built-in name or folder), an exported SavedModel folder or .onnx file,
    or an InstructPix2Pix preset folder; without it, the built-in model. The page
    shows a before/after slider and a download button for photos, and plays and
    downloads colorized films (MP4 with the original audio, stabilised over time).
    Uploads and results live in a temporary folder removed when the app stops.
    Needs the `app` extra: pip install "keras-colorize[app]".

    \b
    Examples:
      keras-colorize app
      keras-colorize app runs/quickstart/checkpoints/best.keras --port 8080
    """
    from keras_colorize.presets import DEFAULT_PRESET
    from keras_colorize.web.app import require_gradio

    select_backend(backend)
    if model is not None:
        check_model_argument(model, exported=True)
    require_gradio()
    import_keras_quietly()
    from keras_colorize.loading import load_photo_colorizer
    from keras_colorize.web import AppModel, launch

    model = model or DEFAULT_PRESET
    app_model = AppModel(load_photo_colorizer(model), name=Path(str(model)).name)
    click.echo(f"keras-colorize app with {app_model.name} on http://{host}:{port} (Ctrl+C stops it)")
    launch(app_model, host=host, port=port, block=True)
