"""Tests of keras_colorize.data on real photos and on odd files made with Pillow in tmp_path."""

import io
import warnings

import keras
import numpy as np
import pytest
import tifffile
from tests.data_helpers import (
    photo,
    save,
    wheel_photo,
    write_corrupt_jpeg,
    write_png16,
    write_truncated,
)
from PIL import Image, ImageCms
from skimage.color import rgb2gray

from keras_colorize.data import (
    IMAGE_EXTENSIONS,
    SAMPLE_PHOTOS,
    ImageFolder,
    NoImagesError,
    SkippedImageWarning,
    UnreadableImageError,
    is_grayscale,
    list_images,
    load_image,
    make_datasets,
    sample_photo_paths,
    sample_photos,
    split_files,
)
from keras_colorize.errors import UserInputError


def bicubic_short_side(array, size):
    """Reference resize: shorter side to `size` with Pillow's bicubic filter."""
    height, width = array.shape[:2]
    if height <= width:
        new = (round(width * size / height), size)
    else:
        new = (size, round(height * size / width))
    return np.asarray(Image.fromarray(array).resize(new, Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def small_photos():
    """Four real colour photos, shorter side 48 (uint8 sRGB)."""
    return {
        name: photo(name, 48)
        for name in ("astronaut.png", "chelsea.png", "rocket.jpg", "flower.jpg")
    }


def make_mixed_folder(root, small_photos):
    """Good photos in two class folders, one grayscale photo and three bad files."""
    save(small_photos["astronaut.png"], root / "people" / "astronaut.png")
    save(small_photos["chelsea.png"], root / "animals" / "chelsea.png")
    save(small_photos["rocket.jpg"], root / "things" / "rocket.jpg", quality=95)
    save(small_photos["flower.jpg"], root / "things" / "deeper" / "flower.png")
    gray = np.asarray(Image.fromarray(photo("coffee.png", 48)).convert("L").convert("RGB"))
    save(gray, root / "things" / "coffee_gray.jpg", quality=90)
    (root / "notes.jpg").write_text("not an image\n")
    write_truncated(root / "animals" / "cut.png", photo("coffee.png", 64))
    write_corrupt_jpeg(root / "people" / "noise.jpg")
    (root / "readme.txt").write_text("ignored: not an image extension\n")
    return root


# --------------------------------------------------------------------- listing


def test_list_images_recursive_and_extensions(tmp_path):
    pixel = np.zeros((4, 4, 3), np.uint8)
    names = ["a.JPG", "b.png", "sub/c.TIFF", "sub/deeper/d.webp", "e.Gif", "f.bmp", "g.jpeg"]
    for name in names:
        suffix = "." + name.rsplit(".", 1)[1].lower()
        save(pixel, tmp_path / name, format=Image.registered_extensions()[suffix])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)  # a cycle
    save(pixel, tmp_path / ".hidden.png")
    save(pixel, tmp_path / ".cache" / "h.png")
    found = list_images(tmp_path)
    assert found == sorted(tmp_path / n for n in names)
    assert ".webp" in IMAGE_EXTENSIONS and ".tif" in IMAGE_EXTENSIONS


def test_list_images_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(NoImagesError, match="empty_dir"):
        list_images(tmp_path / "empty_dir")
    with pytest.raises(NoImagesError, match="missing_dir.*not found"):
        list_images(tmp_path / "missing_dir")
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("x")
    with pytest.raises(NoImagesError, match="only_text"):
        list_images(tmp_path / "only_text")
    assert issubclass(NoImagesError, UserInputError) and issubclass(UnreadableImageError, UserInputError)


def test_folder_of_only_bad_files_is_an_error(tmp_path):
    bad = tmp_path / "bad_photos"
    bad.mkdir()
    (bad / "a.jpg").write_text("hello")
    write_truncated(bad / "b.png", photo("chelsea.png", 48))
    with pytest.warns(SkippedImageWarning), pytest.raises(NoImagesError, match="bad_photos") as info:
        ImageFolder(bad, image_size=16, batch_size=1)
    assert "2 unreadable" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- load_image


@pytest.mark.parametrize("orientation,rot90_k", [(3, 2), (6, -1), (8, 1)])
def test_load_image_applies_exif_orientation(tmp_path, orientation, rot90_k):
    stored = photo("chelsea.png", 48)  # 48 x 72, not square
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(stored, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    decoded_as_stored = np.asarray(Image.open(path).convert("RGB"))  # Pillow ignores EXIF here
    loaded = load_image(path)
    expected = np.rot90(decoded_as_stored, rot90_k)
    assert loaded.shape == expected.shape and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, expected)


def test_load_image_rgba_composites_on_white(tmp_path):
    rgb = photo("astronaut.png", 32)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :10] = 0
    alpha[:, 10:20] = 128
    path = save(np.dstack([rgb, alpha]), tmp_path / "rgba.png")
    loaded = load_image(path).astype(int)
    assert (loaded[:, :10] == 255).all()
    np.testing.assert_array_equal(loaded[:, 20:], rgb[:, 20:])
    half = rgb[:, 10:20].astype(float) * 128 / 255 + 255 * (1 - 128 / 255)
    assert np.abs(loaded[:, 10:20] - half).max() <= 1


def test_load_image_grayscale_with_alpha(tmp_path):
    gray = np.asarray(Image.fromarray(photo("coffee.png", 32)).convert("L"))
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:8] = 0
    path = tmp_path / "la.png"
    Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)]).save(path)
    assert Image.open(path).mode == "LA"
    loaded = load_image(path)
    assert loaded.shape == gray.shape + (3,)
    assert (loaded[:8] == 255).all()
    for channel in range(3):
        np.testing.assert_array_equal(loaded[8:, :, channel], gray[8:])


def test_load_image_palette_with_and_without_transparency(tmp_path):
    rgb = photo("chelsea.png", 32)
    palette = Image.fromarray(rgb).quantize(colors=32)
    path = tmp_path / "palette.png"
    palette.save(path)
    np.testing.assert_array_equal(load_image(path), np.asarray(palette.convert("RGB")))

    indices = np.asarray(palette)
    transparent_index = int(indices[0, 0])
    palette.save(tmp_path / "palette_t.png", transparency=transparent_index)
    loaded = load_image(tmp_path / "palette_t.png")
    mask = indices == transparent_index
    assert (loaded[mask] == 255).all()
    np.testing.assert_array_equal(loaded[~mask], np.asarray(palette.convert("RGB"))[~mask])


def test_load_image_cmyk_jpeg(tmp_path):
    rgb = photo("astronaut.png", 64)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    loaded = load_image(path)
    assert loaded.shape == rgb.shape and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - rgb).mean() < 3.0


def test_load_image_16bit_grayscale_png_scales(tmp_path):
    values = np.array([[0, 32896, 65535, 257 * 100, 1000, 40000]], dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(np.repeat(values, 3, axis=0)).save(path)
    assert Image.open(path).mode.startswith("I")
    loaded = load_image(path)
    expected = np.array([0, 128, 255, 100, 4, 156], dtype=np.uint8)  # round(v * 255 / 65535)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[0, :, channel], expected)


def test_load_image_16bit_rgb_tiff_rounds(tmp_path):
    rng = np.random.default_rng(1)
    base = photo("flower.jpg", 24).astype(np.int64) * 257
    rgb16 = (base + rng.integers(-128, 129, base.shape)).clip(0, 65535).astype(np.uint16)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, rgb16, photometric="rgb")
    loaded = load_image(path)
    expected = np.rint(rgb16 / 257.0).astype(np.uint8)
    assert (expected != (rgb16 >> 8)).any()  # rounding and the high byte differ here
    np.testing.assert_array_equal(loaded, expected)


def test_load_image_16bit_rgb_png(tmp_path):
    exact = photo("rocket.jpg", 16).astype(np.uint16) * 257
    path = write_png16(tmp_path / "rgb16.png", exact)
    np.testing.assert_array_equal(load_image(path), (exact // 257).astype(np.uint8))
    noisy = (exact + np.random.default_rng(0).integers(0, 257, exact.shape)).clip(0, 65535)
    loaded = load_image(write_png16(tmp_path / "rgb16n.png", noisy)).astype(int)
    assert np.abs(loaded - noisy / 257.0).max() <= 1.0


def test_load_image_float_and_1bit_tiff(tmp_path):
    values = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4)
    tifffile.imwrite(tmp_path / "float.tif", values)
    loaded = load_image(tmp_path / "float.tif")
    np.testing.assert_array_equal(loaded[..., 1], np.rint(values * 255).astype(np.uint8))

    bits = np.zeros((8, 8), bool)
    bits[:, 4:] = True
    Image.fromarray(bits).save(tmp_path / "bits.png")
    loaded = load_image(tmp_path / "bits.png")
    assert (loaded[:, :4] == 0).all() and (loaded[:, 4:] == 255).all()


def test_load_image_gif_first_frame(tmp_path):
    rgb = photo("chelsea.png", 32)
    first = Image.fromarray(rgb).quantize(colors=64)
    second = Image.fromarray(255 - rgb).quantize(colors=64)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    loaded = load_image(path).astype(int)
    assert np.abs(loaded - rgb).mean() < 8  # palette quantisation only
    assert np.abs(loaded - (255 - rgb.astype(int))).mean() > 50


@pytest.mark.parametrize("suffix,params", [(".webp", {"lossless": True}), (".bmp", {}), (".tif", {})])
def test_load_image_lossless_formats(tmp_path, suffix, params):
    rgb = photo("coffee.png", 24)
    path = save(rgb, tmp_path / f"image{suffix}", **params)
    np.testing.assert_array_equal(load_image(path), rgb)


def test_load_image_draft_decodes_jpeg_at_reduced_size(tmp_path):
    path = save(photo("astronaut.png"), tmp_path / "big.jpg", quality=95)  # 512 x 512
    small = load_image(path, min_size=100)
    assert small.shape == (128, 128, 3)
    full = load_image(path)
    reference = np.asarray(Image.fromarray(full).resize((128, 128), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - reference).mean() < 4


def test_load_image_icc_profiles(tmp_path):
    rgb = photo("rocket.jpg", 32)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    save(rgb, tmp_path / "plain.png")
    save(rgb, tmp_path / "srgb.png", icc_profile=srgb)
    save(rgb, tmp_path / "broken.png", icc_profile=b"not a profile")
    np.testing.assert_array_equal(load_image(tmp_path / "srgb.png"), rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "broken.png"), rgb)


def test_load_image_bad_files_raise_one_line_errors(tmp_path):
    corrupt = write_corrupt_jpeg(tmp_path / "corrupt.jpg")
    truncated = write_truncated(tmp_path / "truncated.png", photo("coffee.png", 64))
    truncated_jpeg = write_truncated(tmp_path / "truncated.jpg", photo("coffee.png", 64), quality=90)
    text = tmp_path / "text.jpg"
    text.write_text("this is not a photo\n")
    bad_tiff = tmp_path / "bad.tif"
    bad_tiff.write_bytes(b"II*\x00" + b"\x00" * 20)
    for path in (corrupt, truncated, truncated_jpeg, text, bad_tiff, tmp_path / "missing.png"):
        with pytest.raises(UnreadableImageError) as info:
            load_image(path)
        message = str(info.value)
        assert path.name in message and "\n" not in message


def test_is_grayscale_on_real_photos():
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "china.jpg", "flower.jpg"):
        rgb = photo(name, 96)
        assert not is_grayscale(rgb), name
        gray = (rgb2gray(rgb) * 255).round().astype(np.uint8)
        noisy = np.clip(gray[..., None] + np.random.default_rng(0).normal(0, 3, rgb.shape), 0, 255)
        buffer = io.BytesIO()
        Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="JPEG", quality=85)
        assert is_grayscale(np.asarray(Image.open(buffer))), name
    # Mostly black sky with small coloured galaxies is still a colour photo.
    assert not is_grayscale(np.asarray(Image.open(wheel_photo("hubble_deep_field.jpg"))))
    with pytest.raises(ValueError, match="uint8"):
        is_grayscale(np.zeros((4, 4), np.uint8))


# --------------------------------------------------------------- ImageFolder


def test_image_folder_skips_bad_and_grayscale_files(tmp_path, small_photos):
    root = make_mixed_folder(tmp_path / "photos", small_photos)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = ImageFolder(root, image_size=32, batch_size=2, training=True, name="train", workers=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedImageWarning)]
    bad = ["notes.jpg", "cut.png", "noise.jpg", "coffee_gray.jpg"]
    for name in bad:
        assert sum(name in m for m in messages) == 1, (name, messages)
    assert len(messages) == 4
    assert {k: sorted(p.name for p in v) for k, v in dataset.skipped.items()} == {
        "unreadable": ["cut.png", "noise.jpg", "notes.jpg"],
        "grayscale": ["coffee_gray.jpg"],
    }
    used = sorted(p.name for p in dataset.files)
    assert used == ["astronaut.png", "chelsea.png", "flower.png", "rocket.jpg"]
    assert dataset.summary == (
        f"train: 4 images used, 4 skipped (3 unreadable, 1 grayscale) of 8 in {root}/"
    )
    assert len(dataset) == 2
    for batch in dataset:
        assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.float32
        assert 0.0 <= batch.min() and batch.max() <= 1.0 and batch.max() > 0.5
    # Evaluation keeps grayscale photos by default, and ends with a partial batch.
    with pytest.warns(SkippedImageWarning):
        evaluation = ImageFolder(root, image_size=32, batch_size=3, workers=1)
    assert len(evaluation.files) == 5 and len(evaluation) == 2 and evaluation[1].shape == (2, 32, 32, 3)


def test_evaluation_batches_are_centre_crops(tmp_path, small_photos):
    names = ["chelsea.png", "astronaut.png", "rocket.jpg"]
    paths = [
        save(small_photos[n], tmp_path / f"{i}_{n}".replace(".jpg", ".png")) for i, n in enumerate(names)
    ]
    dataset = ImageFolder(tmp_path, image_size=32, batch_size=2, resize_to=40, workers=1)
    assert dataset.files == paths and len(dataset) == 2
    batches = np.concatenate([dataset[0], dataset[1]])
    for image, name in zip(batches, names):
        resized = bicubic_short_side(small_photos[name], 40)
        top, left = (resized.shape[0] - 32) // 2, (resized.shape[1] - 32) // 2
        expected = resized[top : top + 32, left : left + 32].astype(np.float32) / 255.0
        np.testing.assert_allclose(image, expected, atol=1e-7)
    dataset.on_epoch_end()
    np.testing.assert_array_equal(dataset[0], batches[:2])  # deterministic across epochs


def test_training_crops_are_random_windows_and_seeded(tmp_path, small_photos):
    for name, image in small_photos.items():
        save(image, tmp_path / name.replace(".jpg", ".png"))
    kwargs = dict(image_size=24, batch_size=4, training=True, resize_to=40, workers=1)
    first = ImageFolder(tmp_path, seed=7, **kwargs)
    again = ImageFolder(tmp_path, seed=7, cache=False, **kwargs)
    other = ImageFolder(tmp_path, seed=8, **kwargs)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
    epoch0 = first[0]
    first.on_epoch_end()
    again.on_epoch_end()
    assert first.epoch == 1 and not np.array_equal(first[0], epoch0)
    np.testing.assert_array_equal(first[0], again[0])

    # Every crop is a window of the resized photo, possibly mirrored.
    resized = {
        p.name: bicubic_short_side(np.asarray(Image.open(p)), 40).astype(np.float32) / 255.0
        for p in first.files
    }
    for crop in first[0]:
        matches = 0
        for image in resized.values():
            for candidate in (image, image[:, ::-1]):
                height, width = candidate.shape[:2]
                for top in range(height - 23):
                    for left in range(width - 23):
                        if np.allclose(candidate[top : top + 24, left : left + 24], crop, atol=1e-7):
                            matches += 1
        assert matches >= 1


def test_flips_in_training_only(tmp_path, small_photos):
    square = Image.fromarray(small_photos["astronaut.png"]).resize((32, 32), Image.Resampling.BICUBIC)
    square = np.asarray(square)
    save(square, tmp_path / "square.png")
    expected = square.astype(np.float32) / 255.0
    training = ImageFolder(tmp_path, image_size=32, batch_size=8, training=True, repeat=8, workers=1)
    flipped = unflipped = 0
    for _ in range(3):
        for crop in training[0]:
            if np.array_equal(crop, expected):
                unflipped += 1
            else:
                np.testing.assert_array_equal(crop, expected[:, ::-1])
                flipped += 1
        training.on_epoch_end()
    assert flipped >= 3 and unflipped >= 3, (flipped, unflipped)
    evaluation = ImageFolder(tmp_path, image_size=32, batch_size=1, repeat=5, workers=1)
    for index in range(len(evaluation)):
        np.testing.assert_array_equal(evaluation[index][0], expected)


def test_labels_from_sub_folders(tmp_path, small_photos):
    save(small_photos["chelsea.png"], tmp_path / "cats" / "chelsea.png")
    save(small_photos["astronaut.png"], tmp_path / "people" / "astronaut.png")
    save(small_photos["rocket.jpg"], tmp_path / "people" / "nested" / "rocket.png")
    save(small_photos["flower.jpg"], tmp_path / "loose.png")
    with pytest.warns(SkippedImageWarning, match="loose.png"):
        dataset = ImageFolder(tmp_path, image_size=16, batch_size=4, with_labels=True, workers=1)
    assert dataset.class_names == ["cats", "people"]
    assert [p.name for p in dataset.files] == ["chelsea.png", "astronaut.png", "rocket.png"]
    np.testing.assert_array_equal(dataset.labels, [0, 1, 1])
    images, labels = dataset[0]
    assert images.shape == (3, 16, 16, 3) and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [0, 1, 1])
    assert dataset.skipped == {"no class folder": [tmp_path / "loose.png"]}

    with pytest.warns(SkippedImageWarning) as record:
        fixed = ImageFolder(tmp_path, image_size=16, batch_size=4, with_labels=True, class_names=["people"])
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2 and "class 'cats'" in messages[0] and "loose.png" in messages[1]
    assert fixed.skipped == {
        "no class folder": [tmp_path / "loose.png"],
        "unknown class": [tmp_path / "cats" / "chelsea.png"],
    }
    np.testing.assert_array_equal(fixed.labels, [0, 0])
    unlabelled = ImageFolder(tmp_path, image_size=16, batch_size=4, workers=1)
    assert len(unlabelled.files) == 4 and unlabelled.labels is None


def test_split_files_deterministic_disjoint_and_stratified(tmp_path):
    pixel = np.full((4, 4, 3), 100, np.uint8)
    for cls, count in (("a", 10), ("b", 20)):
        for i in range(count):
            save(pixel, tmp_path / cls / f"{i:02d}.png")
    train, validation = split_files(tmp_path, 0.2, seed=3)
    assert split_files(tmp_path, 0.2, seed=3) == (train, validation)
    assert split_files(tmp_path, 0.2, seed=4) != (train, validation)
    assert not set(train) & set(validation)
    assert sorted(train + validation) == list_images(tmp_path)
    assert sum(p.parent.name == "a" for p in validation) == 2
    assert sum(p.parent.name == "b" for p in validation) == 4
    with pytest.raises(UserInputError, match="validation_fraction"):
        split_files(tmp_path, 1.5)


def test_training_set_smaller_than_batch_size(tmp_path, small_photos):
    save(small_photos["chelsea.png"], tmp_path / "one.png")
    save(small_photos["rocket.jpg"], tmp_path / "two.png")
    with pytest.raises(UserInputError, match=r"only 2 usable images.*batch_size=8.*at most 2"):
        ImageFolder(tmp_path, image_size=16, batch_size=8, training=True, workers=1)
    assert len(ImageFolder(tmp_path, image_size=16, batch_size=8, training=True, repeat=4, workers=1)) == 1
    with pytest.raises(UserInputError, match="resize_to"):
        ImageFolder(tmp_path, image_size=16, resize_to=8)


def test_make_datasets_and_sample_photos(tmp_path):
    paths = sample_photo_paths()
    assert [p.stem for p in paths] == list(SAMPLE_PHOTOS)
    assert all(p.is_file() for p in paths)
    target = tmp_path / "samples_copy"
    target.mkdir()
    (target / "china.jpg").write_bytes(b"keep me")
    copies = sample_photos(target)
    assert [p.name for p in copies] == [p.name for p in paths]
    assert (target / "china.jpg").read_bytes() == b"keep me"
    assert (target / "flower.jpg").read_bytes() == paths[-1].read_bytes()

    train, validation = make_datasets(
        "samples", image_size=32, batch_size=3, validation_fraction=0.25, seed=1, workers=1
    )
    assert len(train.files) == 6 and len(validation.files) == 2
    assert not set(train.files) & set(validation.files)
    assert train[0].shape == (3, 32, 32, 3) and validation[0].shape == (2, 32, 32, 3)
    assert validation.training is False and train.training is True

    with pytest.raises(NoImagesError, match="nowhere"):
        make_datasets(tmp_path / "nowhere", image_size=32, batch_size=2)


def test_make_datasets_separate_validation_folder_shares_classes(tmp_path, small_photos):
    save(small_photos["chelsea.png"], tmp_path / "train" / "cats" / "a.png")
    save(small_photos["astronaut.png"], tmp_path / "train" / "people" / "b.png")
    save(small_photos["rocket.jpg"], tmp_path / "val" / "people" / "c.png")
    train, validation = make_datasets(
        tmp_path / "train", 16, 2, validation=tmp_path / "val", with_labels=True, workers=1
    )
    assert validation.class_names == ["cats", "people"]
    images, labels = validation[0]
    np.testing.assert_array_equal(labels, [1])


class ReconstructionModel(keras.Model):
    """A one-convolution model whose loss compares its output with its input."""

    def __init__(self, **kwargs):
        super().__init__(name="reconstruction", **kwargs)
        self.conv = keras.layers.Conv2D(3, 3, padding="same", name="conv")

    def call(self, images):
        return self.conv(images)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return keras.ops.mean(keras.ops.abs(y_pred - x))


class RecordingImageFolder(ImageFolder):
    """The real ImageFolder, also noting a checksum of every batch it serves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.served = {}

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        self.served[(self.epoch, index)] = float(np.asarray(batch, np.float64).sum())
        return batch


def test_image_folder_feeds_model_fit(tmp_path, small_photos):
    for name, image in small_photos.items():
        save(image, tmp_path / name.replace(".jpg", ".png"))
    runs = []
    for _ in range(2):
        dataset = RecordingImageFolder(
            tmp_path, image_size=16, batch_size=2, training=True, seed=5, workers=2
        )
        model = ReconstructionModel()
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model(dataset[0])  # build
        before = keras.ops.convert_to_numpy(model.conv.kernel).copy()
        history = model.fit(dataset, epochs=2, shuffle=False, verbose=0)
        assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
        assert not np.allclose(keras.ops.convert_to_numpy(model.conv.kernel), before)
        runs.append(dataset.served)
    # The same seed serves the same batches, and every epoch of fit draws new crops.
    assert runs[0] == runs[1]
    epochs = sorted({epoch for epoch, _ in runs[0]})
    assert len(epochs) >= 2
    last, previous = epochs[-1], epochs[-2]
    assert runs[0][(last, 0)] != runs[0][(previous, 0)]
