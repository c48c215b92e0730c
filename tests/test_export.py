"""Export to SavedModel, ONNX and .keras, verified by clients that are not keras-colorize.

Three tiny colorizers are exported from the backend of the test process (from JAX and
PyTorch the SavedModel and ONNX artefacts are written by a TensorFlow-backend
subprocess): a U-Net Colorizer, the generator of a saved GANTrainer, and a
ChromaGAN-style generator with a classification branch. Each artefact is then run in
fresh processes that import only TensorFlow (`tf.saved_model.load`,
`saved_model_cli show` and `run`) or only ONNX Runtime, on a real photo of odd size
and on a grayscale photo, and compared with `Colorizer.colorize` on the same image
(within 1 level of 255 per pixel).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from keras_colorize import Colorizer
from keras_colorize.loading import load_colorizer
from keras_colorize.data import sample_photos
from keras_colorize.errors import UserInputError
from keras_colorize.export import (
    OnnxColorizer,
    SavedModelColorizer,
    colorize_uint8,
    export_colorizer,
    export_colorizers,
    read_metadata,
    resize_images,
)
from keras_colorize.export.core import atomic_output
from keras_colorize.models import ChromaGANGenerator, PatchGANDiscriminator, UNetV1
from tests.test_case import assert_one_line_error, invoke_cli as invoke, to_numpy

TINY_UNET = {"encoder_filters": (8, 16, 16), "decoder_filters": (16, 8)}
TINY_CHROMAGAN = {
    "num_classes": 5,
    "encoder_filters": (8, 16, 16, 16),
    "decoder_filters": (16, 16, 8),
    "branch_filters": (16,),
    "branch_from": 2,
    "fusion_units": (16,),
    "head_units": (16,),
    "image_size": 32,
}
NAMES = ("unet", "gan", "chromagan", "backbone")

def assert_same_colorization(got, expected):
    """uint8 RGB of the same shape, within 1 level of 255 per pixel."""
    assert got.dtype == np.uint8 and got.shape == expected.shape, (got.dtype, got.shape, expected.shape)
    difference = np.abs(got.astype("int16") - expected.astype("int16"))
    assert difference.max() <= 1, f"max difference {difference.max()}"


def run_fresh(code, *args, cwd):
    """Run Python `code` in a new process that has no keras-colorize on its path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def saved_model_cli(calls, cwd):
    """Run `saved_model_cli` once per argument list, all at once; return their stdouts."""
    command = shutil.which("saved_model_cli")
    prefix = [command] if command else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    processes = [
        subprocess.Popen(
            [*prefix, *map(str, args)], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in calls
    ]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        outputs.append(stdout)
    return outputs


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def images(photo_paths):
    """A colour photo at an odd size (517 wide, 333 high) and a gray photo (301x199), uint8."""
    chelsea = Image.open(photo_paths[1]).convert("RGB").resize((517, 333), Image.Resampling.LANCZOS)
    coffee = Image.open(photo_paths[2]).convert("L").resize((301, 199), Image.Resampling.LANCZOS)
    return {"rgb": np.asarray(chelsea), "gray": np.asarray(coffee)[..., None]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def colorizers(workdir):
    """The three colorizers; the U-Net and the GAN trainer are also saved as .keras files."""
    keras.utils.set_random_seed(1)
    unet = Colorizer(UNetV1(**TINY_UNET), image_size=32, name="unet_colorizer")
    unet.build()
    unet.save(workdir / "unet.keras")

    from keras_colorize.training import GANTrainer

    trainer = GANTrainer(
        UNetV1(encoder_filters=(8, 16), decoder_filters=(8,), name="gan_generator"),
        PatchGANDiscriminator(filters=(8, 16, 16, 16)),
    )
    trainer.compile()
    trainer.save(workdir / "gan_trainer.keras")
    gan = keras.saving.load_model(workdir / "gan_trainer.keras").colorizer(32)

    chromagan = Colorizer(ChromaGANGenerator(**TINY_CHROMAGAN), image_size=32)
    chromagan.build()

    from tests.test_backbone_unet import tiny_resnet_unet

    backbone = Colorizer(tiny_resnet_unet(attention_level="P4"), image_size=32)
    backbone.build()
    return {"unet": unet, "gan": gan, "chromagan": chromagan, "backbone": backbone}


@pytest.fixture(scope="module")
def exported(colorizers, workdir):
    """Every colorizer as a SavedModel and an ONNX file, the first through the command."""
    stale = workdir / "unet_saved_model"
    stale.mkdir()
    (stale / "stale.txt").write_text("an earlier export")
    refused = invoke("export", workdir / "unet.keras", stale)
    assert_one_line_error(refused, "unet_saved_model", "already exists", "--overwrite")
    assert (stale / "stale.txt").is_file()
    result = invoke("export", workdir / "unet.keras", stale, "--overwrite")
    assert result.exit_code == 0, result.output
    assert "serving_default" in result.stdout and "colorize_batch" in result.stdout
    assert not (stale / "stale.txt").exists() and (stale / "saved_model.pb").is_file()
    jobs = [(colorizers["unet"], workdir / "unet.onnx", "onnx")]
    for name in ("gan", "chromagan", "backbone"):
        jobs += [
            (colorizers[name], workdir / f"{name}_saved_model", "saved_model"),
            (colorizers[name], workdir / f"{name}.onnx", "onnx"),
        ]
    infos = export_colorizers(jobs)
    assert [info.format for info in infos] == ["onnx"] + ["saved_model", "onnx"] * 3
    assert infos[4].num_classes == 5 and infos[0].num_classes is None and infos[-1].num_classes is None
    return {name: (workdir / f"{name}_saved_model", workdir / f"{name}.onnx") for name in NAMES}


@pytest.fixture(scope="module")
def expected(colorizers, images):
    """`Colorizer.colorize` on this backend: the reference every client must match."""
    return {(name, key): colorizers[name].colorize(image) for name in NAMES for key, image in images.items()}


# ----------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize(
    "in_size, out_size",
    [((517, 333), (32, 32)), ((20, 13), (32, 32)), ((64, 64), (32, 48)), ((32, 32), (517, 333)), ((7, 5), (3, 2))],
)
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_matches_keras_resize(in_size, out_size, antialias):
    images = np.random.default_rng(0).random((2, *in_size, 3)).astype("float32")
    reference = to_numpy(keras.ops.image.resize(images, out_size, antialias=antialias))
    got = to_numpy(resize_images(keras.ops.convert_to_tensor(images), out_size, antialias=antialias))
    np.testing.assert_allclose(got, reference, atol=2e-6)


def test_pipeline_on_this_backend_matches_colorize(colorizers, images, expected):
    from skimage.color import rgb2lab

    colorizer = colorizers["chromagan"]
    for key, image in images.items():
        outputs = colorize_uint8(colorizer.generator, colorizer.image_size, keras.ops.convert_to_tensor(image[None]))
        assert_same_colorization(to_numpy(outputs["colorized"])[0], expected["chromagan", key])
        assert to_numpy(outputs["class_logits"]).shape == (1, 5)
    for name in NAMES:
        # The prediction has colour, and the photo's own L* is kept (but where clipping to
        # the sRGB gamut changes it: dark pixels with strong predicted chroma).
        gray = images["gray"]
        colorized = expected[name, "gray"]
        assert np.abs(colorized[..., 0].astype(int) - colorized[..., 2].astype(int)).mean() > 0.5
        lightness_in = rgb2lab(np.repeat(gray, 3, axis=-1) / 255.0)[..., 0]
        assert np.median(np.abs(rgb2lab(colorized / 255.0)[..., 0] - lightness_in)) < 0.5


# ----------------------------------------------------------------------------- SavedModel


def test_saved_model_runs_in_a_tensorflow_only_process(exported, images, expected, colorizers, workdir):
    folder = workdir / "tf_only"
    folder.mkdir()
    for key, image in images.items():
        np.save(folder / f"{key}.npy", image)
    np.save(folder / "batch.npy", np.stack([images["rgb"], images["rgb"][::-1]]))
    request = {"models": {name: str(exported[name][0]) for name in NAMES}, "folder": str(folder)}
    (folder / "request.json").write_text(json.dumps(request))
    code = """
        import json, sys
        import numpy as np
        import tensorflow as tf

        request = json.load(open(sys.argv[1]))
        folder = request["folder"]
        signatures = {}
        for name, path in request["models"].items():
            model = tf.saved_model.load(path)
            serve, batch = model.signatures["serving_default"], model.signatures["colorize_batch"]
            for key in ("rgb", "gray"):
                outputs = serve(image=tf.constant(np.load(f"{folder}/{key}.npy")))
                for output, value in outputs.items():
                    np.save(f"{folder}/{name}_{key}_{output}.npy", value.numpy())
            outputs = batch(images=tf.constant(np.load(f"{folder}/batch.npy")))
            np.save(f"{folder}/{name}_batch.npy", outputs["colorized"].numpy())
            describe = lambda specs: {k: [v.shape.as_list(), v.dtype.name] for k, v in specs.items()}
            signatures[name] = {
                "inputs": describe(serve.structured_input_signature[1]),
                "outputs": describe(serve.structured_outputs),
            }
        assert not [m for m in sys.modules if m.startswith("keras_colorize")]
        print(json.dumps(signatures))
    """
    signatures = json.loads(run_fresh(code, folder / "request.json", cwd=folder).strip().splitlines()[-1])
    for name in NAMES:
        assert signatures[name]["inputs"] == {"image": [[None, None, None], "uint8"]}
        assert signatures[name]["outputs"]["colorized"] == [[None, None, 3], "uint8"]
        for key in images:
            got = np.load(folder / f"{name}_{key}_colorized.npy")
            assert_same_colorization(got, expected[name, key])
        batch = np.load(folder / f"{name}_batch.npy")
        assert_same_colorization(batch[0], expected[name, "rgb"])
        assert_same_colorization(batch[1], colorizers[name].colorize(images["rgb"][::-1]))
    assert signatures["chromagan"]["outputs"]["class_logits"] == [[5], "float32"]
    assert "class_logits" not in signatures["unet"]["outputs"]
    # The class logits are the generator's on the photo's L at the model size.
    colorizer = colorizers["chromagan"]
    logits = colorize_uint8(colorizer.generator, colorizer.image_size, keras.ops.convert_to_tensor(images["rgb"][None]))
    np.testing.assert_allclose(
        np.load(folder / "chromagan_rgb_class_logits.npy"), to_numpy(logits["class_logits"])[0], atol=1e-4
    )


def check_with_saved_model_cli(names, exported, images, expected, folder):
    """`saved_model_cli show --all` lists the signatures; `run` executes serving_default on a .npy photo."""
    folder.mkdir()
    np.save(folder / "photo.npy", images["rgb"])
    shows = [("show", "--dir", exported[name][0], "--all") for name in names]
    runs = [
        ("run", "--dir", exported[name][0], "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"image={folder / 'photo.npy'}", "--outdir", folder / name)
        for name in names
    ]  # fmt: skip
    outputs = saved_model_cli(shows + runs, cwd=folder)
    for name, shown in zip(names, outputs):
        serving = shown[shown.index("signature_def['serving_default']") :]
        assert "signature_def['colorize_batch']" in shown
        assert "inputs['image'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, -1, -1)" in serving
        assert "outputs['colorized'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, -1, 3)" in serving
        assert ("outputs['class_logits']" in shown) == (name == "chromagan")
        batch = shown[shown.index("signature_def['colorize_batch']") :]
        assert "inputs['images'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, -1, -1, -1)" in batch
        assert_same_colorization(np.load(folder / name / "colorized.npy"), expected[name, "rgb"])


def test_saved_model_cli_shows_and_runs_the_signatures(exported, images, expected, workdir):
    check_with_saved_model_cli(["chromagan"], exported, images, expected, workdir / "cli_chromagan")


@pytest.mark.slow
def test_saved_model_cli_on_the_other_artefacts(exported, images, expected, workdir):
    # Four more TensorFlow start-ups (> 20 s here); the fresh-process test above runs them all.
    check_with_saved_model_cli(["unet", "gan"], exported, images, expected, workdir / "cli_others")


def test_saved_model_metadata(exported):
    metadata = read_metadata(exported["chromagan"][0])
    assert metadata["image_size"] == [32, 32] and metadata["num_classes"] == 5
    assert metadata["signatures"] == ["serving_default", "colorize_batch"]
    assert read_metadata(exported["unet"][0])["num_classes"] is None


def test_colorize_command_with_a_saved_model(exported, images, expected, workdir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(images["rgb"]).save(inputs / "odd.png")
    Image.fromarray(images["gray"][..., 0]).save(inputs / "gray.png")
    out = tmp_path / "out"
    result = invoke("colorize", "--saved-model", exported["gan"][0], inputs, "-o", out)
    assert result.exit_code == 0, result.output
    assert "colorized 2 images" in result.stdout
    assert_same_colorization(np.asarray(Image.open(out / "odd.png")), expected["gan", "rgb"])
    assert_same_colorization(np.asarray(Image.open(out / "gray.png")), expected["gan", "gray"])
    # The same command with the checkpoint gives the same photos.
    checkpoint_out = tmp_path / "checkpoint_out"
    assert invoke("colorize", workdir / "unet.keras", inputs, "-o", checkpoint_out).exit_code == 0
    assert_same_colorization(np.asarray(Image.open(checkpoint_out / "odd.png")), expected["unet", "rgb"])

    client = SavedModelColorizer(exported["chromagan"][0])
    assert client.image_size == (32, 32)
    assert_same_colorization(client.colorize(images["rgb"]), expected["chromagan", "rgb"])
    assert_same_colorization(client.colorize(images["gray"][..., 0]), expected["chromagan", "gray"])
    assert client.class_logits(images["rgb"]).shape == (5,)

    missing = invoke("colorize", "--saved-model", tmp_path / "nowhere", inputs, "-o", out, "--overwrite")
    assert_one_line_error(missing, "nowhere", "SavedModel folder not found")
    assert_one_line_error(invoke("colorize", workdir / "unet.keras", "-o", out), "no INPUTS")


def test_a_saved_model_colorizes_a_film_frame_by_frame(exported, workdir, tmp_path, photo_paths):
    from tests.test_video import decode, write_clip

    photo = np.asarray(Image.open(photo_paths[1]).convert("RGB"))
    frames = np.stack([photo[i : i + 48, 2 * i : 2 * i + 80] for i in range(5)])
    film = write_clip(tmp_path / "film.mp4", frames)
    result = invoke("colorize", "--saved-model", exported["gan"][0], film, "-o", tmp_path / "out", "--no-stabilize")
    assert result.exit_code == 0, result.output
    assert "colorized 0 images and 1 video" in result.stdout
    client = SavedModelColorizer(exported["gan"][0])
    expected = np.stack([client.colorize(frame) for frame in decode(film)["frames"]])
    got = decode(tmp_path / "out" / "film.mp4")
    assert got["frames"].shape == frames.shape and len(got["audio"]) == 1
    # Within the video codec's loss (colour at half resolution, 8-bit YUV twice), and far
    # closer to the SavedModel's colorization than to the film's own colours.
    error = np.abs(got["frames"].astype("int16") - expected).mean()
    assert error < 3.0 and error < 0.5 * np.abs(got["frames"].astype("int16") - frames).mean()


def test_colorize_and_evaluate_take_exported_models_as_checkpoints(exported, images, expected, workdir, tmp_path):
    """An .onnx file or a SavedModel folder works where a checkpoint does, in colorize and evaluate."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(images["rgb"]).save(inputs / "odd.png")
    for name, artefact in (("onnx", workdir / "unet.onnx"), ("saved_model", exported["unet"][0])):
        out = tmp_path / f"out_{name}"
        result = invoke("colorize", artefact, inputs, "-o", out)
        assert result.exit_code == 0, result.output
        assert_same_colorization(np.asarray(Image.open(out / "odd.png")), expected["unet", "rgb"])

    photos = tmp_path / "photos"
    sample_photos(photos)
    report = tmp_path / "report"
    result = invoke(
        "evaluate", workdir / "unet.keras", exported["unet"][0], workdir / "unet.onnx",
        "--data", photos, "--size", 32, "--metrics", "psnr,ciede2000", "-o", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((report / "metrics.json").read_text())
    keras_row, saved_row, onnx_row = (summary["metrics"][key] for key in list(summary["metrics"])[:3])
    # The same network: the exported ones differ only by 8-bit photos in and out (one 8-bit
    # step of sRGB is up to about 1 CIEDE2000 unit in dark colours, and the untrained
    # network amplifies the gray input's rounding), far less than from the gray baseline.
    gray_row = summary["metrics"]["gray_baseline"]
    for row in (saved_row, onnx_row):
        assert row["psnr"] == pytest.approx(keras_row["psnr"], abs=0.5)
        assert row["ciede2000"] == pytest.approx(keras_row["ciede2000"], abs=1.0)
    assert abs(gray_row["ciede2000"] - keras_row["ciede2000"]) > 3.0
    models = summary["models"]
    assert [record["mode"] for record in models.values()] == ["direct", "photo", "photo"]
    assert models[list(models)[2]]["generator"] == "OnnxColorizer"
    assert len(models[list(models)[1]]["sha256"]) == 64


# ----------------------------------------------------------------------------- ONNX


def test_onnx_runs_in_onnx_runtime(exported, images, expected, colorizers, workdir):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    folder = workdir / "onnx_only"
    folder.mkdir()
    for key, image in images.items():
        np.save(folder / f"{key}.npy", image)
    models = {name: str(exported[name][1]) for name in NAMES}
    code = """
        import json, sys
        import numpy as np
        import onnxruntime

        folder, models = sys.argv[1], json.loads(sys.argv[2])
        described = {}
        for name, path in models.items():
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            for key in ("rgb", "gray"):
                for output, value in zip(names, session.run(None, {"image": np.load(f"{folder}/{key}.npy")})):
                    np.save(f"{folder}/{name}_{key}_{output}.npy", value)
            described[name] = {
                "inputs": [[i.name, i.shape, i.type] for i in session.get_inputs()],
                "outputs": {o.name: [o.shape, o.type] for o in session.get_outputs()},
            }
        assert not [m for m in sys.modules if m.startswith(("keras", "tensorflow"))]
        print(json.dumps(described))
    """
    described = json.loads(run_fresh(code, folder, json.dumps(models), cwd=folder).strip().splitlines()[-1])
    for name in NAMES:
        assert described[name]["inputs"] == [["image", ["height", "width", "channels"], "tensor(uint8)"]]
        assert described[name]["outputs"]["colorized"] == [["height", "width", 3], "tensor(uint8)"]
        for key in images:
            assert_same_colorization(np.load(folder / f"{name}_{key}_colorized.npy"), expected[name, key])
    assert described["chromagan"]["outputs"]["class_logits"] == [[5], "tensor(float)"]
    assert "class_logits" not in described["gan"]["outputs"]

    client = OnnxColorizer(exported["chromagan"][1])
    assert_same_colorization(client.colorize(images["gray"]), expected["chromagan", "gray"])
    np.testing.assert_allclose(
        client.class_logits(images["rgb"]), np.load(folder / "chromagan_rgb_class_logits.npy"), atol=1e-6
    )
    assert read_metadata(exported["chromagan"][1])["num_classes"] == 5


# ----------------------------------------------------------------------------- .keras and the command


def test_keras_export_is_a_plain_colorizer(colorizers, images, expected, workdir, tmp_path):
    result = invoke("export", tmp_path / "missing.keras", tmp_path / "x.keras", "--format", "keras")
    assert_one_line_error(result, "missing.keras", "not found")
    result = invoke("export", workdir / "unet.keras", tmp_path / "plain.keras", "--format", "keras", "--size", "64")
    assert result.exit_code == 0, result.output
    assert "generator input 64x64" in result.stdout
    plain = load_colorizer(tmp_path / "plain.keras")
    assert plain.image_size == (64, 64) and getattr(plain, "optimizer", None) is None
    resized = Colorizer(colorizers["unet"].generator, image_size=64)
    np.testing.assert_array_equal(plain.colorize(images["rgb"]), resized.colorize(images["rgb"]))

    info = export_colorizer(colorizers["chromagan"], tmp_path / "chromagan.keras", format="keras")
    assert info.num_classes == 5
    np.testing.assert_array_equal(
        load_colorizer(tmp_path / "chromagan.keras").colorize(images["gray"]), expected["chromagan", "gray"]
    )


def test_export_command_refuses_bad_requests(workdir, tmp_path):
    checkpoint = workdir / "unet.keras"
    assert_one_line_error(invoke("export", checkpoint, tmp_path / "model.h5", "--format", "keras"), ".keras")
    result = invoke("export", checkpoint, tmp_path / "x", "--format", "tflite")
    assert result.exit_code == 2 and "tflite" in result.output
    # A size the U-Net cannot take (not a multiple of 4) fails before anything is written.
    assert_one_line_error(invoke("export", checkpoint, tmp_path / "odd", "--size", "30"), "30", "divisible by 4")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserInputError, match="unknown export format"):
        export_colorizer(load_colorizer(checkpoint), tmp_path / "y", format="tflite")
    # --overwrite replaces an existing OUT, as in the other commands; --force is its old name.
    target = tmp_path / "copy.keras"
    assert invoke("export", checkpoint, target, "--format", "keras").exit_code == 0
    assert_one_line_error(invoke("export", checkpoint, target, "--format", "keras"), "already exists", "--overwrite")
    assert invoke("export", checkpoint, target, "--format", "keras", "--overwrite").exit_code == 0
    old_name = invoke("export", checkpoint, target, "--format", "keras", "--force")
    assert old_name.exit_code == 0 and "--force is deprecated; use --overwrite" in old_name.stderr


def test_exports_leave_no_staging_folders(exported, workdir):
    names = {p.name for p in workdir.iterdir()}
    assert not [name for name in names if name.endswith(".partial")]
    for name in NAMES:
        assert f"{name}_saved_model" in names and f"{name}.onnx" in names


def test_a_failed_write_leaves_nothing_and_keeps_the_old_output(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError, match="exporter crashed"):
        with atomic_output(target) as staging:
            staging.mkdir()
            (staging / "half_written.pb").write_bytes(b"\0" * 10)
            raise RuntimeError("exporter crashed")
    assert list(tmp_path.iterdir()) == []

    target.mkdir()
    (target / "old.pb").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target, overwrite=True) as staging:
            staging.mkdir()
            raise RuntimeError("exporter crashed")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (target / "old.pb").read_text() == "old"

    with atomic_output(target, overwrite=True) as staging:
        staging.mkdir()
        (staging / "new.pb").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.pb"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
