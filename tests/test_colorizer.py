"""The Colorizer task: training from sRGB, losses in model space, any-size colorization, saving."""

import zipfile

import keras
import numpy as np
import pytest
from skimage.color import rgb2lab

from keras_colorize import Colorizer
from keras_colorize.color import rgb_to_model_inputs
from keras_colorize.colorizer import gray_baseline
from keras_colorize.loading import load_checkpoint, load_colorizer
from keras_colorize.errors import UserInputError
from keras_colorize.models import UNetV1, UNetV2
from tests.test_case import other_backend, run_colorizer_test, run_in_backend, to_numpy

TINY = {"encoder_filters": (8, 16, 16), "decoder_filters": (16, 8)}


def tiny_colorizer(cls=UNetV1, image_size=64):
    keras.utils.set_random_seed(0)
    return Colorizer(cls(**TINY), image_size=image_size)


@pytest.mark.parametrize("cls", [UNetV1, UNetV2])
@pytest.mark.parametrize("loss", ["l1", "l2", "huber"])
def test_trains_from_real_photos(photos_64, cls, loss):
    run_colorizer_test(tiny_colorizer(cls), photos_64[:6], loss=loss)


@pytest.mark.parametrize(
    "loss, reference",
    [("l1", keras.losses.MeanAbsoluteError()), ("l2", keras.losses.MeanSquaredError()), ("huber", keras.losses.Huber())],
)
def test_loss_is_computed_on_model_space_ab(photos_64, loss, reference):
    colorizer = tiny_colorizer()
    colorizer.compile(loss=loss, metrics=[])
    images = photos_64[:4]
    predicted = colorizer(images, training=False)
    _, target = rgb_to_model_inputs(images, "channels_last")
    expected = float(to_numpy(reference(target, predicted)))
    got = float(to_numpy(colorizer.compute_loss(x=images, y=None, y_pred=predicted, training=False)))
    assert got == pytest.approx(expected, rel=1e-5)
    # The same through evaluate(): the target ab comes from the images themselves.
    assert colorizer.evaluate(images, batch_size=4, verbose=0) == pytest.approx(expected, rel=1e-4)


def test_metrics_are_reported_in_srgb(photos_64):
    from keras_colorize.metrics import psnr

    colorizer = tiny_colorizer()
    colorizer.compile(loss="l2")
    images = photos_64[:4]
    results = colorizer.evaluate(images, batch_size=4, verbose=0, return_dict=True)
    predicted_rgb = colorizer.predict_rgb(images)
    expected = float(np.mean(to_numpy(psnr(images, predicted_rgb))))
    assert results["psnr"] == pytest.approx(expected, rel=1e-4)


def test_gray_baseline_keeps_lightness_and_drops_chroma(photos_64):
    gray = gray_baseline(photos_64)
    lab_gray, lab_true = rgb2lab(gray.astype("float64")), rgb2lab(photos_64.astype("float64"))
    np.testing.assert_allclose(lab_gray[..., 0], lab_true[..., 0], atol=0.05)
    assert np.abs(lab_gray[..., 1:]).max() < 0.05


def test_colorize_any_size_keeps_full_resolution_lightness(photo_paths):
    from PIL import Image

    photo = np.asarray(Image.open(photo_paths[1]).convert("RGB").resize((517, 333)))
    colorizer = tiny_colorizer()
    output = colorizer.colorize(photo)
    assert output.shape == photo.shape and output.dtype == np.uint8
    # Full-resolution detail: L* of the output is the photo's own L* (up to 8-bit rounding
    # and gamut clipping), not an upsampled low-resolution L*.
    l_in = rgb2lab(photo / 255.0)[..., 0]
    l_out = rgb2lab(output / 255.0)[..., 0]
    assert np.median(np.abs(l_in - l_out)) < 0.5
    # Gray input (2-D and one channel) gives a colour image of the same size.
    gray = photo.mean(axis=-1).astype("uint8")
    assert colorizer.colorize(gray).shape == photo.shape
    np.testing.assert_array_equal(colorizer.colorize(gray), colorizer.colorize(gray[..., None]))


def test_colorize_converts_in_strips_from_any_input_form(photo_paths, monkeypatch):
    """Strips of rows (uint8 converted per strip) give the photo converted whole; float and
    uint8 inputs agree."""
    from PIL import Image

    import keras_colorize.colorizer as colorizer_module

    photo = np.asarray(Image.open(photo_paths[2]).convert("RGB").resize((300, 250)))
    colorizer = tiny_colorizer()
    whole = colorizer.colorize(photo)
    monkeypatch.setattr(colorizer_module, "RECOMBINE_ROWS", 64)  # 4 strips, the last one short
    np.testing.assert_array_equal(colorizer.colorize(photo), whole)
    from_float = colorizer.colorize(photo.astype("float32") / 255.0)
    assert np.abs(from_float.astype(int) - whole.astype(int)).max() <= 1


def test_colorize_at_model_size_is_the_model_prediction(photos_64):
    colorizer = tiny_colorizer()
    colorizer.compile(optimizer=keras.optimizers.Adam(1e-2), loss="l1", metrics=[])
    colorizer.fit(photos_64, batch_size=7, epochs=3, verbose=0)
    image = np.rint(photos_64[0] * 255).astype("uint8")
    expected = np.rint(colorizer.predict_rgb(photos_64[:1])[0] * 255)
    output = colorizer.colorize(image)  # already at the model size: resizes are identities
    assert np.abs(output.astype("float32") - expected).max() <= 1.0
    # The model really colours: the result differs from the gray baseline.
    gray = np.rint(gray_baseline(photos_64[:1])[0] * 255)
    assert np.abs(output.astype("float32") - gray).mean() > 1.0


def test_image_size_must_suit_the_generator():
    with pytest.raises(UserInputError, match="divisible by 4"):
        Colorizer(UNetV1(**TINY), image_size=30)


def test_save_and_load_with_optimizer_state(photos_64, tmp_path):
    colorizer = tiny_colorizer()
    run_colorizer_test(colorizer, photos_64[:4])
    path = tmp_path / "colorizer.keras"
    colorizer.save(path)
    loaded = load_colorizer(path)
    np.testing.assert_allclose(
        to_numpy(loaded(photos_64, training=False)), to_numpy(colorizer(photos_64, training=False)), atol=1e-6
    )
    assert loaded.image_size == colorizer.image_size
    assert int(loaded.optimizer.iterations) == int(colorizer.optimizer.iterations)
    for saved, restored in zip(colorizer.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(saved), to_numpy(restored))


def test_load_colorizer_errors_are_one_line(tmp_path):
    with pytest.raises(UserInputError, match="checkpoint not found"):
        load_colorizer(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(UserInputError, match="not a .keras checkpoint"):
        load_colorizer(bad)
    UNetV1(**TINY).save(tmp_path / "generator.keras")
    with pytest.raises(UserInputError, match="not a Colorizer"):
        load_colorizer(tmp_path / "generator.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((tmp_path / "generator.keras").read_bytes()[:-2000])
    with pytest.raises(UserInputError, match="truncated.keras: not a .keras checkpoint"):
        load_colorizer(truncated)
    # A class this installation does not know: the user's file, not our fault.
    with zipfile.ZipFile(tmp_path / "generator.keras") as source, zipfile.ZipFile(tmp_path / "alien.keras", "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name == "config.json":
                data = data.replace(b"UNetV1", b"NoSuchColorizer")
            out.writestr(name, data)
    with pytest.raises(UserInputError, match="alien.keras: cannot load checkpoint"):
        load_colorizer(tmp_path / "alien.keras")


@keras.saving.register_keras_serializable(package="keras_colorize_tests")
class _FaultyFromConfig(keras.Model):
    """A model whose `from_config` has a bug (stands for a fault in the loading code)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)

    @classmethod
    def from_config(cls, config):
        raise RuntimeError("a bug in from_config")


def test_a_fault_in_the_loading_code_is_not_reported_as_a_user_error(tmp_path):
    model = _FaultyFromConfig()
    model(np.zeros((1, 3), "float32"))
    model.save(tmp_path / "faulty.keras")
    with pytest.raises(RuntimeError, match="a bug in from_config"):
        load_checkpoint(tmp_path / "faulty.keras")


def test_saved_under_one_backend_loads_under_another(photos_64, tmp_path):
    colorizer = tiny_colorizer()
    colorizer.compile(loss="huber", metrics=[])
    colorizer.fit(photos_64[:4], batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "colorizer.keras"
    colorizer.save(path)
    np.save(tmp_path / "x.npy", photos_64)
    expected = to_numpy(colorizer(photos_64, training=False))
    backend = other_backend()
    run_in_backend(
        backend,
        f"""
        import numpy as np
        from keras_colorize.loading import load_colorizer
        model = load_colorizer({str(path)!r})
        ab = model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)
        np.save({str(tmp_path / 'y.npy')!r}, ab)
        print("ok")
        """,
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)


def test_generators_with_extra_outputs_use_their_ab(photos_64):
    inputs = keras.Input((None, None, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    ab = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")(features)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    generator = keras.Model(inputs, {"ab": ab, "class_logits": logits})
    colorizer = Colorizer(generator, image_size=64)
    run_colorizer_test(colorizer, photos_64[:4])
    image = np.rint(photos_64[1] * 255).astype("uint8")
    assert colorizer.colorize(image[:40, :50]).shape == (40, 50, 3)


def test_a_fixed_size_generator_must_match_the_image_size():
    from keras_colorize.models import ChromaGANGenerator

    generator = ChromaGANGenerator(
        num_classes=3,
        encoder_filters=(8, 8, 8, 8, 8),
        decoder_filters=(8, 8, 8, 8),
        branch_filters=(8, 8),
        fusion_units=(8,),
        head_units=(8,),
        image_size=64,
    )
    with pytest.raises(UserInputError, match="fixed input size 64"):
        Colorizer(generator, image_size=32)
    assert Colorizer(generator, image_size=64).image_size == (64, 64)
