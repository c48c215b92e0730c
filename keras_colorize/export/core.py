"""Export a Colorizer to a SavedModel, an ONNX file or a `.keras` file, from any backend.

SavedModel and ONNX artefacts are always traced by a TensorFlow-backend process: in
one, the export runs in-process; from a JAX- or PyTorch-backend process, the colorizer
is saved to a temporary `.keras` file and one TensorFlow-backend subprocess per call
(`python -m keras_colorize.export.worker`) writes the artefacts. Every artefact is
written next to its destination first and renamed into place, so a failed export
leaves nothing behind.
"""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from keras_colorize.atomic_files import atomic_output, check_output
from keras_colorize.errors import UserInputError
from keras_colorize.export.artefacts import ONNX_OPSET

FORMATS = ("saved_model", "onnx", "keras", "preset")
IN_PROCESS_FORMATS = ("keras", "preset")
"""Formats written by the calling process on any backend (the others by TensorFlow)."""


class ExportError(RuntimeError):
    """An export that failed for a reason other than the user's input."""


@dataclasses.dataclass
class ExportInfo:
    """What an export wrote.

    Attributes:
        path: Path. The SavedModel folder, ONNX file or `.keras` file.
        format: str. "saved_model", "onnx" or "keras".
        image_size: (int, int). The size (height, width) the generator sees.
        num_classes: int or None. Length of the "class_logits" output, None when the
            generator has no classification branch.
    """

    path: Path
    format: str
    image_size: tuple
    num_classes: object = None

    def summary(self):
        """A few lines naming the artefact and its signatures, for people."""
        size = f"{self.image_size[0]}x{self.image_size[1]}"

        def logits(batch):
            return f", class_logits: float32 ({batch}{self.num_classes},)" if self.num_classes else ""

        if self.format == "keras":
            return f"wrote Colorizer to {self.path} (generator input {size})"
        if self.format == "preset":
            return f"wrote preset to {self.path} (generator input {size}; Colorizer.from_preset loads it)"
        if self.format == "onnx":
            return "\n".join(
                [
                    f"wrote ONNX model to {self.path} "
                    f"(opset {ONNX_OPSET}, full-resolution graph, generator input {size})",
                    f"  image: uint8 (H, W, C), C = 1 or 3 -> colorized: uint8 (H, W, 3){logits('')}",
                ]
            )
        return "\n".join(
            [
                f"wrote SavedModel to {self.path} (full-resolution signatures, generator input {size})",
                f"  serving_default: image: uint8 (H, W, C), C = 1 or 3 -> colorized: uint8 (H, W, 3){logits('')}",
                f"  colorize_batch: images: uint8 (N, H, W, C) -> colorized: uint8 (N, H, W, 3){logits('N, ')}",
            ]
        )

    def metadata(self):
        """The JSON-serialisable metadata stored inside the artefact."""
        from keras_colorize import __version__

        return {
            "producer": f"keras-colorize {__version__}",
            "format": self.format,
            "image_size": list(self.image_size),
            "num_classes": self.num_classes,
        }


def current_backend():
    """The Keras backend of this process (imports Keras)."""
    import keras

    return keras.backend.backend()


def with_image_size(colorizer, image_size=None):
    """The colorizer itself, or a Colorizer of its generator at another size.

    Args:
        colorizer: keras_colorize.Colorizer. The trained colorizer.
        image_size: int, (int, int) or None. The size the generator should see;
            None keeps the colorizer's. Defaults to None.

    Returns:
        A `Colorizer` sharing the generator's weights.

    Raises:
        UserInputError: the generator cannot run at `image_size`.
    """
    if image_size is None:
        return colorizer
    from keras_colorize.colorizer import Colorizer

    return Colorizer(colorizer.generator, image_size=image_size)


def class_logits_size(generator, image_size):
    """Length of the generator's "class_logits" output, or None when it has none."""
    shapes = generator.compute_output_shape((1, *image_size, 1))
    if isinstance(shapes, dict) and "class_logits" in shapes:
        return int(shapes["class_logits"][-1])
    return None


def export_colorizer(colorizer, path, format="saved_model", image_size=None, overwrite=False, metadata=None):
    """Export a Colorizer as a SavedModel, an ONNX file, a `.keras` file or a preset folder.

    The SavedModel's `serving_default` signature takes one photo, sRGB or gray in
    [0, 255], uint8, shape (H, W, 3) or (H, W, 1), of any size, and returns
    "colorized", sRGB in [0, 255], uint8, shape (H, W, 3) (plus "class_logits",
    float32, (classes,), for generators with a classification branch);
    `colorize_batch` does the same for a batch (N, H, W, C) of one size. The
    pipeline inside the graph is `Colorizer.colorize`'s: the generator sees L*
    resized to `image_size`, its ab is upsampled and recombined with the
    full-resolution L*. The ONNX file holds the `serving_default` graph (input
    "image", outputs "colorized" and "class_logits"). A `.keras` export is the
    plain Colorizer (no optimizer state); a preset is the folder
    `Colorizer.from_preset` loads (`Colorizer.save_to_preset`, float16 weights).

    SavedModel and ONNX need TensorFlow (and tf2onnx for ONNX): from a JAX- or
    PyTorch-backend process the export runs in a TensorFlow-backend subprocess.

    Args:
        colorizer: keras_colorize.Colorizer. The colorizer to export.
        path: str or Path. The SavedModel folder, `.onnx` file or `.keras` file.
        format: "saved_model", "onnx", "keras" or "preset". Defaults to "saved_model".
        image_size: int, (int, int) or None. The size the generator sees; None
            keeps the colorizer's. Defaults to None.
        overwrite: bool. Replace an existing `path`. Defaults to False.
        metadata: dict or None. A preset's extra metadata (what it was trained on,
            the recipe, measured figures). Defaults to None.

    Returns:
        ExportInfo. The path, format, generator input size and class count.

    Raises:
        UserInputError: unknown format, existing `path`, a size the generator
            cannot take, or a missing exporter package.
        ExportError: the exporter failed.

    Examples:
        >>> from keras_colorize import Colorizer
        >>> from keras_colorize.export import export_colorizer
        >>> from keras_colorize.models import UNetV1
        >>> colorizer = Colorizer(UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)), image_size=32)
        >>> info = export_colorizer(colorizer, "exported/colorizer")  # doctest: +SKIP
        >>> print(info.summary())  # doctest: +SKIP
    """
    return export_colorizers(
        [(with_image_size(colorizer, image_size), path, format)], overwrite=overwrite, metadata=metadata
    )[0]


def export_colorizers(jobs, overwrite=False, metadata=None):
    """Export several colorizers or formats at once (see `export_colorizer`).

    From a JAX- or PyTorch-backend process, one TensorFlow-backend subprocess
    writes all the SavedModel and ONNX artefacts.

    Args:
        jobs: sequence of (Colorizer, path, format) tuples.
        overwrite: bool. Replace existing paths. Defaults to False.
        metadata: dict or None. Extra metadata of preset exports. Defaults to None.

    Returns:
        list of ExportInfo, in the order of `jobs`.
    """
    jobs = [(colorizer, Path(path), format) for colorizer, path, format in jobs]
    seen = set()
    for colorizer, path, format in jobs:
        if format not in FORMATS:
            raise UserInputError(f"unknown export format {format!r} (choose one of: {', '.join(FORMATS)})")
        if format == "keras" and path.suffix != ".keras":
            raise UserInputError(f"{path}: a .keras export needs a file name ending in .keras")
        if path.resolve() in seen:
            raise UserInputError(f"{path}: two exports to the same path")
        seen.add(path.resolve())
        check_output(path, overwrite)
        colorizer.build()
    results = {}
    remote = []
    in_process = current_backend() == "tensorflow"
    for index, (colorizer, path, format) in enumerate(jobs):
        if format in IN_PROCESS_FORMATS or in_process:
            results[index] = _export_here(colorizer, path, format, overwrite, metadata)
        else:
            remote.append(index)
    if remote:
        if importlib.util.find_spec("tensorflow") is not None:
            from keras_colorize.quiet_import import import_quietly

            import_quietly("tensorflow")  # Keras's saving imports it; hide its start-up lines
        with tempfile.TemporaryDirectory(prefix="keras_colorize_export_") as folder:
            specs = []
            for index in remote:
                colorizer, path, format = jobs[index]
                checkpoint = Path(folder) / f"colorizer_{index}.keras"
                _plain(colorizer).save(checkpoint)
                specs.append({"checkpoint": str(checkpoint), "path": str(path), "format": format})
            run_tensorflow_export(specs, overwrite=overwrite)
        for index in remote:
            colorizer, path, format = jobs[index]
            results[index] = _info(colorizer, path, format)
    return [results[index] for index in range(len(jobs))]


def _plain(colorizer):
    """A plain Colorizer of the same generator and size (no optimizer, no trainer)."""
    from keras_colorize.colorizer import Colorizer

    plain = Colorizer(colorizer.generator, image_size=colorizer.image_size)
    plain.build()
    return plain


def _info(colorizer, path, format):
    num_classes = class_logits_size(colorizer.generator, colorizer.image_size)
    return ExportInfo(Path(path), format, colorizer.image_size, num_classes)


def _export_here(colorizer, path, format, overwrite, metadata=None):
    info = _info(colorizer, path, format)
    if format == "keras":
        with atomic_output(path, overwrite) as target:
            _plain(colorizer).save(target)
        return info
    if format == "preset":
        _plain(colorizer).save_to_preset(path, metadata=metadata, overwrite=overwrite)
        return info
    if format == "onnx":
        from keras_colorize.export.onnx import write_onnx as writer
    else:
        from keras_colorize.export.saved_model import write_saved_model as writer
    with atomic_output(path, overwrite) as target:
        writer(colorizer, target, info)
    return info


def run_tensorflow_export(jobs, overwrite=False):
    """Run exports in a TensorFlow-backend subprocess (`keras_colorize.export.worker`).

    Args:
        jobs: list of dicts with "checkpoint" (a `.keras` file), "path", "format"
            and optionally "image_size".
        overwrite: bool. Replace existing paths. Defaults to False.

    Returns:
        str. The summaries the subprocess printed.

    Raises:
        UserInputError: TensorFlow is not installed, or the subprocess reported a
            user error (its one-line message is re-raised).
        ExportError: the subprocess failed otherwise.
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise UserInputError(
            "SavedModel and ONNX export run on TensorFlow, which is not installed "
            "(pip install 'keras-colorize[tensorflow]')"
        )
    if any(job["format"] == "onnx" for job in jobs):
        for module in ("tf2onnx", "onnx"):
            if importlib.util.find_spec(module) is None:
                raise UserInputError(
                    f"ONNX export needs {module}, which is not installed (pip install 'keras-colorize[onnx]')"
                )
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    request = json.dumps({"jobs": jobs, "overwrite": bool(overwrite)})
    result = subprocess.run(
        [sys.executable, "-m", "keras_colorize.export.worker"], input=request, env=env, capture_output=True, text=True
    )
    if result.returncode == 0:
        return result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if result.returncode == 2 and errors:
        raise UserInputError(errors[-1][len("error: "):])
    tail = "\n".join(result.stderr.strip().splitlines()[-20:])
    raise ExportError(f"the TensorFlow-backend export process failed (exit status {result.returncode}):\n{tail}")
