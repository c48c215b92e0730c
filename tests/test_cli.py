"""The command line, end to end in-process (click's CliRunner) on real photos.

Tiny configuration: UNetV1 with encoder_filters [8, 16, 16] and decoder_filters
[16, 8] at 32x32, 2 steps per epoch, on the sample photos written with sample_photos().
"""

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_colorize.loading import load_colorizer
from keras_colorize.data import sample_photos
from keras_colorize.recipes import load_recipe
from tests.test_case import REPO_ROOT, assert_one_line_error, other_backend
from tests.test_case import invoke_cli as invoke


TINY = """\
# A tiny recipe for tests.
model:
  name: UNetV1
  encoder_filters: [8, 16, 16]
  decoder_filters: [16, 8]
colorizer:
  image_size: 32
  loss: l2
optimizer:
  name: adam
  learning_rate: 1.0e-3
data:
  train: {photos}
  validation_fraction: 0.125
  workers: 1
train:
  epochs: 2
  batch_size: 2
  steps_per_epoch: 2
  num_samples: 2
"""


def snapshot(folder):
    """Every file under `folder` with its content hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    photos = root / "photos"
    sample_photos(photos)
    recipe = root / "tiny.yaml"
    recipe.write_text(TINY.format(photos=photos))
    return root, photos, recipe


@pytest.fixture(scope="module")
def trained(workspace):
    """A 2-epoch run through `keras-colorize fit`."""
    root, _, recipe = workspace
    run_dir = root / "runs" / "tiny"
    result = invoke("fit", recipe, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir, result


# ----------------------------------------------------------------------------- fit


def test_fit_writes_the_run_directory(trained):
    run_dir, result = trained
    assert "Epoch 2/2" in result.stdout
    for name in [
        "recipe.yaml",
        "environment.json",
        "state.json",
        "history.csv",
        "loss_curve.png",
        "checkpoints/last.keras",
        "checkpoints/best.keras",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
    ]:
        assert (run_dir / name).is_file(), name
    assert history_epochs(run_dir) == [0, 1]
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["backend"] == keras.backend.backend()
    assert environment["keras"] == keras.__version__
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epoch"] == 2 and state["monitor"] == "val_lpips"  # not a loss that rewards gray
    with open(run_dir / "history.csv", newline="") as handle:
        val_lpips = [float(row["val_lpips"]) for row in csv.DictReader(handle)]
    assert state["best"] == pytest.approx(min(val_lpips))
    recipe = load_recipe(str(run_dir / "recipe.yaml"))
    assert recipe["train"]["epochs"] == 2 and recipe["model"]["encoder_filters"] == [8, 16, 16]
    for name in ("last", "best"):
        colorizer = load_colorizer(run_dir / "checkpoints" / f"{name}.keras")
        assert colorizer.image_size == (32, 32)
    assert int(load_colorizer(run_dir / "checkpoints" / "last.keras").optimizer.iterations) == 4
    grid = Image.open(run_dir / "samples" / "epoch_002.png")
    assert grid.mode == "RGB" and grid.width > grid.height  # one row: the held-out photo


def test_fit_refuses_an_existing_run(trained, workspace):
    run_dir, _ = trained
    _, _, recipe = workspace
    before = snapshot(run_dir)
    result = invoke("fit", recipe, "--run-dir", run_dir)
    assert_one_line_error(result, str(run_dir), "--resume")
    assert snapshot(run_dir) == before


def test_resume_continues_to_the_total_epoch_count(workspace):
    root, _, recipe = workspace
    run_dir = root / "runs" / "resumed"
    assert invoke("fit", recipe, "--run-dir", run_dir, "--set", "train.epochs=1").exit_code == 0
    assert history_epochs(run_dir) == [0]
    first_last = (run_dir / "checkpoints" / "last.keras").read_bytes()
    diverging = root / "runs" / "diverging"
    shutil.copytree(run_dir, diverging)

    result = invoke("fit", recipe, "--run-dir", run_dir, "--resume", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    assert "Epoch 2/2" in result.stdout and "Epoch 1/2" not in result.stdout
    assert history_epochs(run_dir) == [0, 1]
    assert (run_dir / "checkpoints" / "last.keras").read_bytes() != first_last
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 2
    assert int(load_colorizer(run_dir / "checkpoints" / "last.keras").optimizer.iterations) == 4
    assert (run_dir / "samples" / "epoch_002.png").is_file()

    # A diverging continuation stops, names the epoch, and keeps the last good checkpoint.
    result = invoke(
        "fit", recipe, "--run-dir", diverging, "--resume", "--set", "train.epochs=3", "--set", "optimizer.learning_rate=1e30"
    )
    assert result.exit_code == 1, result.output
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: training diverged:") and "epoch 2" in message, message
    assert "last.keras (epoch 1) is unchanged" in message
    assert (diverging / "checkpoints" / "last.keras").read_bytes() == first_last
    assert json.loads((diverging / "state.json").read_text())["epoch"] == 1
    assert not (diverging / "samples" / "epoch_002.png").exists()


def test_resume_needs_a_run(workspace, tmp_path):
    _, _, recipe = workspace
    result = invoke("fit", recipe, "--run-dir", tmp_path / "none", "--resume")
    assert_one_line_error(result, "nothing to resume")


BAD = {
    "unknown top-level key": (["--set", "trian.epochs=1"], "trian (--set): unknown key"),
    "unknown nested key": (["--set", "train.epoch=1"], "train.epoch (--set): unknown key"),
    "wrong type": (["--set", "train.batch_size=two"], "train.batch_size (--set): expected integer"),
    "missing data folder": (["--set", "data.train=/no/such/folder"], "data.train (--set): folder not found"),
    "unknown model": (["--set", "model.name=UNetV9"], "model.name (--set): unknown model 'UNetV9'"),
    "model kwarg typo": (["--set", "model.decoder_filter=[16, 8]"], "model.decoder_filter (--set): unknown key"),
    "set without =": (["--set", "train.epochs"], "--set train.epochs: expected KEY=VALUE"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_overrides_exit_2_and_write_nothing(workspace, tmp_path, case):
    _, _, recipe = workspace
    args, fragment = BAD[case]
    run_dir = tmp_path / "run"
    result = invoke("fit", recipe, "--run-dir", run_dir, *args)
    assert_one_line_error(result, fragment)
    if "--set train.epochs" not in fragment:
        assert str(recipe) in result.stderr
    assert not run_dir.exists()


BAD_FILES = {
    "unknown top-level key": ("extra: 1\n", "bad.yaml: extra: unknown key"),
    "unknown nested key": ("train:\n  epocs: 1\n", "bad.yaml: train.epocs: unknown key (did you mean 'epochs'?"),
    "wrong type": ("train:\n  epochs: [1]\n", "bad.yaml: train.epochs: expected integer, got list"),
    "unknown model": ("model:\n  name: Nope\n", "bad.yaml: model.name: unknown model 'Nope'"),
    "model kwarg typo": ("model:\n  encoder_filtrs: [8, 16]\n", "bad.yaml: model.encoder_filtrs: unknown key"),
    "missing data folder": ("data:\n  train: nowhere\n", "bad.yaml: data.train: folder not found: nowhere"),
    "invalid yaml": ("train: [1\n", "bad.yaml: invalid YAML"),
    "base chain": ("base: child.yaml\n", "child.yaml: base: a base recipe cannot have its own base"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_recipe_files_exit_2_and_write_nothing(workspace, tmp_path, monkeypatch, case):
    _, _, recipe = workspace
    monkeypatch.chdir(tmp_path)
    text, fragment = BAD_FILES[case]
    (tmp_path / "child.yaml").write_text(f"base: {recipe}\n")
    if case in ("invalid yaml", "base chain"):
        (tmp_path / "bad.yaml").write_text(text)
    else:
        (tmp_path / "bad.yaml").write_text(f"base: {recipe}\n{text}")
    result = invoke("fit", "bad.yaml")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "runs").exists()


def test_unknown_recipe_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("fit", "quickstrat"), "quickstrat: recipe not found", "quickstart")


def test_builtin_recipe_runs_by_name(workspace, tmp_path, monkeypatch):
    _, photos, _ = workspace
    monkeypatch.chdir(tmp_path)
    args = [
        "fit", "unet_v2", "--set", "model.encoder_filters=[8, 16]", "--set", "model.decoder_filters=[8]",
        "--set", "colorizer.image_size=32", "--set", f"data.train={photos}", "--set", "train.epochs=1",
        "--set", "train.batch_size=2", "--set", "train.steps_per_epoch=1", "--set", "data.validation_fraction=0",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "unet_v2"  # default run directory: runs/<recipe name>
    assert (run_dir / "checkpoints" / "best.keras").is_file()  # best by loss without validation
    assert json.loads((run_dir / "state.json").read_text())["monitor"] == "loss"
    assert "# Resolved recipe, loaded from unet_v2 (built-in)" in (run_dir / "recipe.yaml").read_text()


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_prints_table_and_writes_results(trained, workspace, tmp_path):
    run_dir, _ = trained
    _, photos, _ = workspace
    checkpoint = run_dir / "checkpoints" / "best.keras"
    out = tmp_path / "evaluation"
    result = invoke("evaluate", checkpoint, "--data", photos, "-o", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["psnr", "ssim"])
    names = lines[header].split()
    assert names == ["psnr", "ssim", "mae", "lpips", "colorfulness", "colorfulness_gap", "ciede2000", "ab_mse"]
    model_row, gray_row = lines[header + 1], lines[header + 2]
    assert model_row.startswith("model") and gray_row.startswith("gray baseline")
    report = json.loads((out / "metrics.json").read_text())
    assert set(report) >= {"models", "data", "image_size", "num_images", "backend", "metrics"}
    assert report["models"]["model"]["checkpoint"] == str(checkpoint)
    assert report["image_size"] == 32 and report["num_images"] == 8
    model, gray = report["metrics"]["model"], report["metrics"]["gray_baseline"]
    assert set(model) == set(gray) == set(names)
    assert model != gray and model["colorfulness"] > gray["colorfulness"]
    assert [float(v) for v in model_row.split()[1:]] == pytest.approx([model[n] for n in names], rel=1e-3)
    with Image.open(out / "comparison.png") as image:
        assert image.mode == "RGB" and image.height > image.width  # 8 rows of 3 columns
    with open(out / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and [r["model"] for r in rows[:2]] == ["model", "gray_baseline"]
    assert "<table" in (out / "report.html").read_text()

    before = snapshot(out)
    assert_one_line_error(invoke("evaluate", checkpoint, "--data", photos, "-o", out), "metrics.json", "--overwrite")
    assert snapshot(out) == before
    result = invoke("evaluate", checkpoint, "--data", photos, "-o", out, "--overwrite", "--size", "64")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["image_size"] == 64


def test_evaluate_errors(trained, tmp_path):
    run_dir, _ = trained
    checkpoint = run_dir / "checkpoints" / "best.keras"
    assert_one_line_error(invoke("evaluate", tmp_path / "missing.keras", "--data", tmp_path), "missing.keras")
    assert_one_line_error(invoke("evaluate", checkpoint, "-o", tmp_path / "e"), "--data is required")
    assert_one_line_error(invoke("evaluate", checkpoint, "--data", tmp_path / "nope", "-o", tmp_path / "e"), "nope")
    assert_one_line_error(invoke("evaluate", checkpoint, "--data", "samples", "--size", "34", "-o", tmp_path / "e"), "multiple of 4")
    assert_one_line_error(
        invoke("evaluate", checkpoint, "--data", "samples", "--metrics", "psnr,lpip", "-o", tmp_path / "e"), "'lpip'"
    )
    assert_one_line_error(
        invoke("evaluate", checkpoint, "--data", "samples", "--lpips-weights", tmp_path / "no.h5", "-o", tmp_path / "e"),
        "no.h5",
    )
    assert not (tmp_path / "e").exists()


# ----------------------------------------------------------------------------- colorize


def test_colorize_files_and_folders(trained, workspace, tmp_path):
    run_dir, _ = trained
    _, photos, _ = workspace
    checkpoint = run_dir / "checkpoints" / "best.keras"
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    chelsea = Image.open(photos / "chelsea.png").convert("RGB")
    chelsea.resize((517, 333)).save(inputs / "sub" / "odd.jpg", quality=95)
    gray = chelsea.convert("L").resize((301, 203))
    gray.save(inputs / "gray.png")
    chelsea.resize((64, 48)).save(inputs / "anim.gif")
    (inputs / "broken.jpg").write_bytes(b"this is not a JPEG")
    out = tmp_path / "out"

    result = invoke("colorize", checkpoint, inputs, photos / "rocket.jpg", "-o", out)
    assert result.exit_code == 0, result.output
    assert "colorized 4 images" in result.stdout and "skipped 1 unreadable" in result.stdout
    assert result.stderr.count("warning: skipped") == 1 and "broken.jpg" in result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["anim.png", "gray.png", "rocket.jpg", "sub/odd.jpg"]
    with Image.open(out / "sub" / "odd.jpg") as image:
        assert image.size == (517, 333) and image.format == "JPEG"
    with Image.open(out / "gray.png") as image:
        assert image.size == (301, 203) and image.mode == "RGB"
        # The lightness of the gray photo is kept (only a* and b* are predicted).
        from skimage.color import rgb2lab

        lightness_out = rgb2lab(np.asarray(image, "float64") / 255.0)[..., 0]
        lightness_in = rgb2lab(np.repeat(np.asarray(gray, "float64")[..., None] / 255.0, 3, axis=-1))[..., 0]
        assert np.mean(np.abs(lightness_out - lightness_in)) < 1.0
    with Image.open(out / "rocket.jpg") as image, Image.open(photos / "rocket.jpg") as original:
        assert image.size == original.size

    before = snapshot(out)
    assert_one_line_error(invoke("colorize", checkpoint, inputs, "-o", out), "already exists", "--overwrite")
    assert snapshot(out) == before
    result = invoke("colorize", checkpoint, inputs / "gray.png", "-o", out, "--overwrite")
    assert result.exit_code == 0 and "colorized 1 image into" in result.stdout

    inputs_before = snapshot(inputs)
    for args in (["-o", inputs], ["-o", inputs, "--overwrite"]):
        assert_one_line_error(invoke("colorize", checkpoint, inputs, *args), "would replace an input")
    assert_one_line_error(invoke("colorize", checkpoint, inputs / "gray.png", "-o", inputs, "--overwrite"), "gray.png")
    assert snapshot(inputs) == inputs_before
    assert_one_line_error(invoke("colorize", checkpoint, tmp_path / "nothing.png", "-o", out), "nothing.png")


# ----------------------------------------------------------------------------- listings, backend


def test_models_recipes_and_samples(tmp_path):
    result = invoke("models")
    assert result.exit_code == 0, result.output
    assert f"backend {keras.backend.backend()}" in result.stdout.splitlines()[0]
    table, presets = result.stdout.split("\n\n")
    rows = {line.split()[0]: line.split()[1:3] for line in table.splitlines()[2:]}
    assert rows["UNetV1"] == ["generator", "42,036,738"] and rows["UNetV2"] == ["generator", "26,565,314"]
    assert rows["BackboneUNet"] == ["generator", "19,786,629"]  # with the VGG16 encoder
    assert "backbone_unet_vgg16 (the default of colorize)" in presets
    assert rows["PatchGANDiscriminator"] == ["discriminator", "2,767,425"]
    assert rows["SimpleWeightModel"] == ["fusion", "-"]  # built from two U-Nets: no default size

    result = invoke("recipes")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()[:-1]]
    assert names == [
        "backbone_unet_vgg16", "gan_l1", "gan_l1_class", "instance_fusion", "instruct_pix2pix_colorize",
        "instruct_pix2pix_tiny", "pix2pix", "quickstart", "unet_v1", "unet_v2", "wgan_gp_l2_class",
    ]

    result = invoke("samples", tmp_path / "photos")
    assert result.exit_code == 0
    assert len(list((tmp_path / "photos").iterdir())) == 8


def test_backend_cannot_change_after_keras_is_imported():
    other = other_backend()
    for args in (["--backend", other, "models"], ["models", "--backend", other]):
        result = invoke(*args)
        assert_one_line_error(result, f"already imported with the {keras.backend.backend()} backend", other)
    assert invoke("models", "--backend", keras.backend.backend()).exit_code == 0


def test_backend_option_selects_the_backend_in_a_fresh_process():
    other = other_backend()
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), PYTHONPATH=REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "keras_colorize.cli", "--backend", other, "models"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"backend {other})" in result.stdout.splitlines()[0]
    # The command-level option works too, and the package import stays Keras-free.
    probe = "import sys, keras_colorize.cli; assert 'keras' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout.strip() == "ok"


@pytest.mark.parametrize(
    "args", [["--help"], ["recipes"], ["weights", "--help"], ["export", "--help"], ["colorize", "--help"]]
)
def test_help_and_recipes_do_not_import_keras(args):
    """`--help` and `recipes` answer without importing Keras or a backend library."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    probe = (
        "import sys\nfrom keras_colorize.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "loaded = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "print('imported:', ','.join(loaded) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "imported: none"


def test_top_level_package_resolves_subpackages_and_first_names():
    """`kc.models.UNetV1` works in a fresh process without importing the subpackage first."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    probe = (
        "import keras_colorize as kc\n"
        "names = set(dir(kc))\n"
        "assert {'models', 'data', 'metrics', 'training', 'layers', 'losses', 'load_checkpoint'} <= names, names\n"
        "print(kc.models.UNetV1.__name__, kc.data.ImageFolder.__name__, kc.metrics.PSNR.__name__,\n"
        "      kc.training.GANTrainer.__name__, kc.layers.__name__, kc.losses.__name__,\n"
        "      kc.load_checkpoint.__name__, kc.WGANGPTrainer.__name__, kc.ChromaGANGenerator.__name__,\n"
        "      kc.PatchGANDiscriminator.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "UNetV1", "ImageFolder", "PSNR", "GANTrainer", "keras_colorize.layers", "keras_colorize.losses",
        "load_checkpoint", "WGANGPTrainer", "ChromaGANGenerator", "PatchGANDiscriminator",
    ]
