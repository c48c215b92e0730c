"""Training-run pieces: atomic files, callbacks, grids, run-directory rules, evaluation."""

import json
import math
import stat

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor
from skimage.metrics import peak_signal_noise_ratio

from keras_colorize.colorizer import Colorizer

from keras_colorize.loading import load_colorizer
from keras_colorize.data import ImageFolder
from keras_colorize.errors import UserInputError
from keras_colorize.evaluation import METRIC_NAMES, evaluate_colorizer, format_table
from keras_colorize.models import UNetV1
from keras_colorize.recipes import RecipeError
from keras_colorize.training import (
    AtomicCheckpoint,
    LossCurve,
    RunDirectoryError,
    SampleGrid,
    TerminateOnNonFinite,
    atomic_file,
    environment_info,
    read_history,
    run_training,
)
from keras_colorize.training.callbacks import truncate_history
from keras_colorize.visualization import comparison_grid


def tiny_colorizer(image_size=32, seed=1):
    keras.utils.set_random_seed(seed)
    colorizer = Colorizer(UNetV1(encoder_filters=(8, 16, 16), decoder_filters=(16, 8)), image_size=image_size)
    colorizer.compile(optimizer="adam", loss="l2")
    colorizer(np.zeros((1, image_size, image_size, 3), "float32"))
    colorizer.optimizer.build(colorizer.trainable_variables)
    return colorizer


@pytest.fixture(scope="module")
def photos_32(photo_paths):
    """The real photos as a non-training ImageFolder at 32x32 (centre crops)."""
    return ImageFolder(photo_paths, image_size=32, batch_size=3, training=False, workers=1)


def all_images(dataset):
    return np.concatenate([dataset[i] for i in range(len(dataset))])


# ----------------------------------------------------------------------------- atomic files


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".json"
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp files left
    # The same permissions as a file written with open(): 0666 less the umask.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


# ----------------------------------------------------------------------------- checkpoints


def test_atomic_checkpoint_last_best_state_and_nan(tmp_path, photos_64):
    colorizer = tiny_colorizer(64)
    checkpoint = AtomicCheckpoint(tmp_path / "checkpoints", state_path=tmp_path / "state.json", monitor="val_loss")
    checkpoint.set_model(colorizer)
    state = lambda: json.loads((tmp_path / "state.json").read_text())  # noqa: E731

    checkpoint.on_epoch_end(0, {"loss": 0.3, "val_loss": 0.2})
    best_bytes = checkpoint.best_path.read_bytes()
    assert state() == {"epoch": 1, "monitor": "val_loss", "best": 0.2, "best_epoch": 1}
    loaded = load_colorizer(checkpoint.last_path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(photos_64[:2], training=False)),
        keras.ops.convert_to_numpy(colorizer(photos_64[:2], training=False)),
        atol=1e-6,
    )

    colorizer.generator.get_layer("ab_output").kernel.assign(
        colorizer.generator.get_layer("ab_output").kernel * 0.5
    )
    checkpoint.on_epoch_end(1, {"loss": 0.25, "val_loss": 0.4})  # worse: last only
    assert checkpoint.best_path.read_bytes() == best_bytes
    assert state() == {"epoch": 2, "monitor": "val_loss", "best": 0.2, "best_epoch": 1}
    last_bytes = checkpoint.last_path.read_bytes()
    assert last_bytes != best_bytes

    checkpoint.on_epoch_end(2, {"loss": math.nan, "val_loss": 0.1})  # diverged: nothing written
    checkpoint.on_epoch_end(2, {"loss": 0.2, "val_loss": math.inf})
    assert checkpoint.last_path.read_bytes() == last_bytes and state()["epoch"] == 2

    kernel = colorizer.generator.get_layer("ab_output").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))  # finite logs, broken weights
    checkpoint.on_epoch_end(2, {"loss": 0.2, "val_loss": 0.1})
    assert checkpoint.last_path.read_bytes() == last_bytes and state()["epoch"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.keras", "last.keras"]


def test_atomic_checkpoint_higher_is_better_and_required_monitors(tmp_path):
    colorizer = tiny_colorizer(32)
    checkpoint = AtomicCheckpoint(tmp_path / "max", monitor="val_psnr", mode="max")
    checkpoint.set_model(colorizer)
    for epoch, value in enumerate((20.0, 25.0, 22.0)):
        checkpoint.on_epoch_end(epoch, {"loss": 0.1, "val_psnr": value})
    assert checkpoint.best == 25.0 and checkpoint.best_epoch == 2
    required = AtomicCheckpoint(tmp_path / "required", monitor="val_sharpness", required=True)
    required.set_model(colorizer)
    with pytest.raises(UserInputError, match="'val_sharpness' is not among the logged values"):
        required.on_epoch_end(0, {"loss": 0.1, "val_loss": 0.2})
    fallback = AtomicCheckpoint(tmp_path / "fallback", monitor="val_loss")  # no validation data: the loss
    fallback.set_model(colorizer)
    fallback.on_epoch_end(0, {"loss": 0.1})
    assert fallback.best == 0.1


def test_terminate_on_non_finite_records_epoch_and_batch():
    colorizer = tiny_colorizer()
    guard = TerminateOnNonFinite()
    guard.set_model(colorizer)
    colorizer.stop_training = False
    guard.on_epoch_begin(4)
    guard.on_train_batch_end(0, {"loss": 0.5})
    assert guard.diverged is None and not colorizer.stop_training
    guard.on_train_batch_end(2, {"loss": math.inf})
    assert guard.diverged == {"epoch": 5, "batch": 3, "loss": math.inf, "key": "loss"}
    assert colorizer.stop_training
    late = TerminateOnNonFinite()
    late.set_model(colorizer)
    late.on_epoch_end(1, {"loss": 0.1, "val_loss": math.nan})
    assert late.diverged["epoch"] == 2 and late.diverged["key"] == "val_loss"


# ----------------------------------------------------------------------------- pictures


def test_comparison_grid_places_each_image_exactly():
    rng = np.random.default_rng(0)
    columns = [rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8) for _ in range(3)]
    grid = comparison_grid(columns, min_tile=32)  # 16 px tiles are doubled
    pad, header, tile = 4, 20, 32
    assert grid.shape == (header + 2 * (tile + pad) + pad, 3 * (tile + pad) + pad, 3)
    for col, column in enumerate(columns):
        for row in range(2):
            top, left = header + pad + row * (tile + pad), pad + col * (tile + pad)
            np.testing.assert_array_equal(grid[top : top + tile : 2, left : left + tile : 2], column[row])
            np.testing.assert_array_equal(grid[top + 1 : top + tile : 2, left + 1 : left + tile : 2], column[row])
    float_grid = comparison_grid([c.astype("float32") / 255.0 for c in columns], min_tile=32)
    np.testing.assert_array_equal(float_grid, grid)


def test_sample_grid_writes_gray_prediction_truth(tmp_path, photos_64):
    colorizer = tiny_colorizer(64)
    images = photos_64[:3]
    callback = SampleGrid(images, tmp_path / "samples")
    callback.set_model(colorizer)
    callback.on_epoch_end(6, {"loss": 0.1})
    grid = np.asarray(Image.open(tmp_path / "samples" / "epoch_007.png"))
    tile, pad, header = 128, 4, 20  # 64 px images are doubled to 128
    truth_uint8 = np.clip(np.rint(images * 255), 0, 255).astype("uint8")
    prediction = np.clip(np.rint(colorizer.predict_rgb(images) * 255), 0, 255).astype("uint8")
    gray = grid[header + pad : header + pad + tile : 2, pad : pad + tile : 2]
    np.testing.assert_allclose(gray[..., 0], gray[..., 1], atol=2)  # neutral gray (a* = b* = 0)
    for row in range(3):
        top = header + pad + row * (tile + pad)
        np.testing.assert_array_equal(grid[top : top + tile : 2, 2 * (tile + pad) + pad :][:, : tile : 2], truth_uint8[row])
        np.testing.assert_array_equal(grid[top : top + tile : 2, tile + 2 * pad : 2 * tile + 2 * pad : 2], prediction[row])
    callback.on_epoch_end(7, {"loss": math.nan})
    assert not (tmp_path / "samples" / "epoch_008.png").exists()


def test_history_read_truncate_and_loss_curve(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,0.5,0.4\n1,0.3,0.35\n2,nan,nan\n")
    history = read_history(path)
    assert history["epoch"] == [1, 2, 3]
    assert history["loss"][:2] == [0.5, 0.3] and math.isnan(history["loss"][2])
    truncate_history(path, 2)
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,0.5,0.4", "1,0.3,0.35"]
    curve = LossCurve(tmp_path / "loss_curve.png", history=read_history(path), title="t")
    curve.on_epoch_end(2, {"loss": 0.2})
    assert curve.history["epoch"] == [1, 2, 3] and curve.history["loss"] == [0.5, 0.3, 0.2]
    assert math.isnan(curve.history["val_loss"][2])
    with Image.open(tmp_path / "loss_curve.png") as image:
        assert image.format == "PNG" and image.size == (600, 400)


# ----------------------------------------------------------------------------- run rules


TINY_RECIPE = {
    "model": {"name": "UNetV1", "encoder_filters": [8, 16, 16], "decoder_filters": [16, 8]},
    "colorizer": {"image_size": 32},
    "data": {"train": "samples"},
    "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 1},
}


def test_run_training_checks_before_writing(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RecipeError, match=r"colorizer.image_size \(--set\): .*divisible"):
        run_training(TINY_RECIPE, run_dir=run_dir, overrides=["colorizer.image_size=34"])
    with pytest.raises(RecipeError, match=r"data.train \(--set\): folder not found"):
        run_training(TINY_RECIPE, run_dir=run_dir, overrides=[f"data.train={tmp_path / 'missing'}"])
    assert not run_dir.exists()
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        run_training(TINY_RECIPE, run_dir=run_dir, resume=True)
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match=r"run directory is not empty; pass --resume"):
        run_training(TINY_RECIPE, run_dir=run_dir)
    assert [p.name for p in run_dir.iterdir()] == ["notes.txt"]


def test_environment_info_names_backend_and_versions():
    info = environment_info()
    backend = keras.backend.backend()
    assert info["backend"] == backend and info["keras"] == keras.__version__
    assert info[backend] == __import__(backend).__version__
    assert {"python", "numpy"} <= set(info)
    json.dumps(info)


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_colorizer_matches_scikit_image(photos_32):
    colorizer = tiny_colorizer(32)
    result = evaluate_colorizer(colorizer, photos_32, num_examples=4)
    truth = all_images(photos_32).astype("float64")
    n = len(truth)
    assert result["num_images"] == n and result["image_size"] == [32, 32]
    assert set(result["model"]) == set(METRIC_NAMES) == set(result["gray_baseline"])
    np.testing.assert_array_equal(result["examples"]["truth"], truth[:4].astype("float32"))
    assert result["examples"]["prediction"].shape == (4, 32, 32, 3)

    lab = skcolor.rgb2lab(truth)
    gray_lab = lab.copy()
    gray_lab[..., 1:] = 0.0
    gray = np.clip(skcolor.lab2rgb(gray_lab), 0, 1)
    gray_row = result["gray_baseline"]
    assert gray_row["psnr"] == pytest.approx(np.mean([peak_signal_noise_ratio(t, g, data_range=1.0) for t, g in zip(truth, gray)]), abs=0.02)
    assert gray_row["mae"] == pytest.approx(np.mean(np.abs(truth - gray)) * 255, rel=2e-3)
    assert gray_row["ab_mse"] == pytest.approx(np.mean((lab[..., 1:] / 128.0) ** 2), rel=1e-3)
    assert gray_row["ciede2000"] == pytest.approx(np.mean(skcolor.deltaE_ciede2000(lab, skcolor.rgb2lab(gray))), rel=2e-3)
    assert gray_row["colorfulness"] < 0.5

    prediction = colorizer.predict_rgb(truth.astype("float32")).astype("float64")
    ab_pred = keras.ops.convert_to_numpy(colorizer.predict(truth.astype("float32"), verbose=0))
    model_row = result["model"]
    assert model_row["psnr"] == pytest.approx(np.mean([peak_signal_noise_ratio(t, p, data_range=1.0) for t, p in zip(truth, prediction)]), abs=0.02)
    assert model_row["ab_mse"] == pytest.approx(np.mean((ab_pred - lab[..., 1:] / 128.0) ** 2), rel=1e-3)
    assert model_row != gray_row

    table = format_table(result).splitlines()
    assert table[0].split() == list(METRIC_NAMES)
    assert table[1].startswith("model") and table[2].startswith("gray baseline")
    assert float(table[2].split()[2]) == pytest.approx(gray_row["psnr"], abs=1e-3)
