"""ONNX export (Keras's `model.export(format="onnx")`, tf2onnx) and colorization with ONNX Runtime."""

import json
import warnings
from pathlib import Path

from keras_colorize.errors import UserInputError
from keras_colorize.export.artefacts import ONNX_METADATA_KEY, ONNX_OPSET, to_uint8_image

# Names of the dynamic axes of the graph's input and "colorized" output.
_IMAGE_AXES = ("height", "width", "channels")


def _require(module, package):
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserInputError(
            f"ONNX export needs {package}, which is not installed (pip install 'keras-colorize[onnx]')"
        )


def write_onnx(colorizer, path, info):
    """Write the full-resolution ONNX graph of a colorizer (TensorFlow backend only).

    Input "image": sRGB or gray in [0, 255], uint8, (H, W, C), C = 1 or 3.
    Outputs "colorized": sRGB in [0, 255], uint8, (H, W, 3); and "class_logits",
    float32, (classes,), for generators with a classification branch. The
    keras-colorize metadata is stored in the model's metadata_props.

    Args:
        colorizer: keras_colorize.Colorizer, built.
        path: Path. The `.onnx` file to write.
        info: ExportInfo. Its metadata is stored with the model.
    """
    _require("tf2onnx", "tf2onnx")
    _require("onnx", "onnx")
    import keras
    import onnx

    from keras_colorize.export.pipeline import ColorizationPipeline

    pipeline = ColorizationPipeline(colorizer.generator, colorizer.image_size, single_image=True, name="colorize_image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's NumPy 2 shim
        pipeline.export(
            str(path),
            format="onnx",
            input_signature=[keras.InputSpec(shape=(None, None, None), dtype="uint8", name="image")],
            opset_version=ONNX_OPSET,
            verbose=False,
        )
    model = onnx.load(str(path))
    graph_input = model.graph.input[0].type.tensor_type.shape
    for axis, name in zip(graph_input.dim, _IMAGE_AXES):
        axis.dim_param = name
    for output in model.graph.output:
        if output.name == "colorized":
            dims = output.type.tensor_type.shape.dim
            dims[0].dim_param, dims[1].dim_param = _IMAGE_AXES[:2]
    model.producer_name = "keras-colorize"
    entry = model.metadata_props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = json.dumps(dict(info.metadata(), opset=ONNX_OPSET))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


class OnnxColorizer:
    """Colorize photos with an exported ONNX file through ONNX Runtime.

    The same `colorize(image)` contract as `keras_colorize.Colorizer`.

    Args:
        path: str or Path. An `.onnx` file written by `export_colorizer(...,
            format="onnx")` (or `keras-colorize export --format onnx`).
        providers: list of str or None. ONNX Runtime execution providers.
            Defaults to None (CPU).

    Raises:
        UserInputError: the file is missing, or onnxruntime is not installed.

    Examples:
        >>> from keras_colorize.export import OnnxColorizer
        >>> colorizer = OnnxColorizer("colorizer.onnx")  # doctest: +SKIP
        >>> rgb = colorizer.colorize(gray_photo)  # uint8 (H, W, 3)  # doctest: +SKIP
    """

    def __init__(self, path, providers=None):
        import importlib.util

        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"{path}: ONNX file not found")
        if importlib.util.find_spec("onnxruntime") is None:
            raise UserInputError("running an ONNX file needs onnxruntime (pip install onnxruntime)")
        import onnxruntime

        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.output_names = [output.name for output in self.session.get_outputs()]

    def colorize(self, image):
        """Colorize one photo of any size at full resolution.

        Args:
            image: uint8 (0-255) or float (0-1) sRGB of shape (H, W, 3), or gray
                of shape (H, W) or (H, W, 1). Other inputs are quantised to 8
                bits first.

        Returns:
            NumPy uint8 sRGB, shape (H, W, 3).
        """
        return self.session.run(["colorized"], {"image": to_uint8_image(image)})[0]

    def class_logits(self, image):
        """The classification branch's logits for a photo, or None without a branch.

        Args:
            image: uint8 (0-255) or float (0-1) sRGB of shape (H, W, 3), or gray of
                shape (H, W) or (H, W, 1).

        Returns:
            NumPy float32 logits of shape (classes,), or None.
        """
        if "class_logits" not in self.output_names:
            return None
        return self.session.run(["class_logits"], {"image": to_uint8_image(image)})[0]
