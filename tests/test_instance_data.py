"""Tests of keras_colorize.data.instances on real photos: crops, packing, InstanceImageFolder,
InstanceCropFolder and make_instance_datasets."""

import json
import shutil

import keras
import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize as skimage_resize
from tests.data_helpers import photo, save, wheel_photo

from keras_colorize.data import (
    Box,
    ImageFolder,
    InstanceCropFolder,
    InstanceImageFolder,
    NoImagesError,
    crop_instances,
    load_image,
    make_instance_datasets,
    pack_instances,
)
from keras_colorize.errors import UserInputError

# Boxes in pixels of the files the `photos` fixture writes, as (x, y, width, height, score).
ASTRONAUT_BOXES = [  # astronaut.png at 128 x 128 (a quarter of the original)
    (37.5, 2.5, 40.0, 37.5, 0.995),  # face
    (0.0, 0.0, 24.0, 65.0, 0.999),  # flag
    (88.75, 0.0, 27.5, 72.5, 0.993),  # shuttle
]
CHELSEA_BOXES = [  # chelsea.png at 144 x 96
    (48.0, 19.2, 35.2, 38.4, 0.998),  # left eye
    (92.8, 32.0, 19.2, 19.2, 0.42),  # right eye, low score
]
CHINA_BOX = (180.0, 100.0, 260.0, 220.0, 0.999)  # china.jpg, 640 x 427, kept as it ships


def one_line_error(error_type, match, function, *args, **kwargs):
    with pytest.raises(error_type, match=match) as info:
        function(*args, **kwargs)
    assert "\n" not in str(info.value), str(info.value)
    return str(info.value)


def detections(name, boxes):
    return [{"file_name": name, "bbox": list(b[:4]), "score": b[4]} for b in boxes]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of real photos (two with boxes, one with a rotated EXIF orientation, one without
    boxes) and its detection-list boxes file."""
    root = tmp_path_factory.mktemp("instance_photos")
    folder = root / "photos"
    save(photo("astronaut.png", 128), folder / "astronaut.png")
    save(photo("chelsea.png", 96), folder / "cats" / "chelsea.png")
    save(photo("coffee.png", 80), folder / "coffee.png")
    shutil.copy(wheel_photo("china.jpg"), folder / "china.jpg")
    # Stored turned a quarter to the left with EXIF orientation 6: it loads upright, 96 wide, 64 high.
    exif = Image.Exif()
    exif[0x0112] = 6
    save(np.rot90(photo("rocket.jpg", 64), 1), folder / "rocket.jpg", exif=exif.tobytes(), quality=95)
    entries = (
        detections("astronaut.png", ASTRONAUT_BOXES)
        + detections("cats/chelsea.png", CHELSEA_BOXES)
        + detections("china.jpg", [CHINA_BOX])
        + detections("rocket.jpg", [(30.0, 4.0, 40.0, 56.0, 0.999)])
    )
    boxes = root / "detections.json"
    boxes.write_text(json.dumps(entries))
    return folder, boxes


def files_by_name(dataset):
    return {p.name: i for i, p in enumerate(dataset.files)}


# ------------------------------------------------------------ crop and pack


def test_crop_instances_matches_pillow_crop_then_resize():
    image = photo("chelsea.png")  # 451 x 300
    corners = np.array([[140, 20, 300, 170], [0, 0, 451, 300], [200, 150, 212, 158]], np.float32)
    crops = crop_instances(image, corners, 32)
    assert crops.shape == (3, 32, 32, 3) and crops.dtype == np.float32
    for crop, box in zip(crops, corners.astype(int).tolist()):
        reference = Image.fromarray(image).crop(box).resize((32, 32), Image.Resampling.BILINEAR)
        np.testing.assert_allclose(crop * 255.0, np.asarray(reference, np.float32), atol=1.0)
        # An independent resampler (scikit-image, antialiased) agrees closely on average.
        x0, y0, x1, y1 = box
        other = skimage_resize(image[y0:y1, x0:x1] / 255.0, (32, 32), order=1, anti_aliasing=True)
        assert np.abs(crop - other).mean() < 0.03
    # Boxes reaching out of the image are clipped to it.
    np.testing.assert_array_equal(crop_instances(image, [[-50, -10, 300, 170]], 32)[0],
                                  crop_instances(image, [[0, 0, 300, 170]], 32)[0])
    # Fractional corners cut between pixels: close to, but not the same as, the rounded box.
    shifted = crop_instances(image, [[140.5, 20.5, 300.5, 170.5]], 32)[0]
    assert 0 < np.abs(shifted - crops[0]).mean() < 0.02


def test_crop_instances_gray_and_float_images():
    image = photo("astronaut.png", 96)
    gray = np.asarray(Image.fromarray(image).convert("L"))
    corners = [[10, 20, 60, 90]]
    crops = crop_instances(gray, corners, 16)
    assert crops.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(crops[..., 0], crops[..., 1])
    np.testing.assert_array_equal(crops[..., 0], crops[..., 2])
    reference = np.asarray(Image.fromarray(gray).crop((10, 20, 60, 90)).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(crops[0, ..., 0] * 255.0, reference, atol=1.0)
    from_float = crop_instances(image.astype(np.float32) / 255.0, corners, 16)
    np.testing.assert_allclose(from_float, crop_instances(image, corners, 16), atol=1.0 / 255.0)
    assert crop_instances(image, np.zeros((0, 4)), 16).shape == (0, 16, 16, 3)


def test_crop_instances_errors():
    image = photo("astronaut.png", 64)
    two_channels = image[..., :2]
    one_line_error(UserInputError, r"shape \(H, W, 3\) or \(H, W\)", crop_instances, two_channels, [[0, 0, 8, 8]], 8)
    one_line_error(UserInputError, r"no area inside the 64x64 image", crop_instances, image, [[70, 0, 90, 8]], 8)
    one_line_error(UserInputError, r"shape \(K, 4\)", crop_instances, image, [[0, 0, 8]], 8)
    one_line_error(UserInputError, r"shape \(K, 4\)", crop_instances, image, [[0, 0, np.nan, 8]], 8)
    one_line_error(UserInputError, "size must be a positive integer", crop_instances, image, [[0, 0, 8, 8]], 0)


def test_pack_instances_pads_and_masks():
    rng = np.random.default_rng(0)
    three = rng.random((3, 8, 8, 3), dtype=np.float32)
    three_boxes = rng.random((3, 4)).astype(np.float32)
    one = rng.random((1, 8, 8, 3), dtype=np.float32)
    batch = pack_instances(
        [np.zeros((0, 8, 8, 3), np.float32), one, three],
        [np.zeros((0, 4)), np.array([[0.1, 0.2, 0.6, 0.7]]), three_boxes],
        max_instances=3,
    )
    assert sorted(batch) == ["boxes", "crops", "mask"]
    assert batch["crops"].shape == (3, 3, 8, 8, 3) and batch["boxes"].shape == (3, 3, 4)
    assert all(v.dtype == np.float32 for v in batch.values())
    np.testing.assert_array_equal(batch["mask"], [[0, 0, 0], [1, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(batch["crops"][1, 0], one[0])
    np.testing.assert_array_equal(batch["crops"][2], three)
    np.testing.assert_array_equal(batch["boxes"][2], three_boxes)
    np.testing.assert_allclose(batch["boxes"][1, 0], [0.1, 0.2, 0.6, 0.7])
    assert not batch["crops"][0].any() and not batch["crops"][1, 1:].any() and not batch["boxes"][0].any()
    one_line_error(UserInputError, "image 2 has 3 instances, more than max_instances=2", pack_instances,
                   [one, one, three], [np.zeros((1, 4))] * 2 + [three_boxes], 2)
    one_line_error(UserInputError, "one crops and one boxes array per image, got 2 and 1", pack_instances,
                   [one, one], [np.zeros((1, 4))], 2)
    one_line_error(UserInputError, r"image 0 has 1 crops but boxes of shape \(2, 4\)", pack_instances,
                   [one], [np.zeros((2, 4))], 2)
    one_line_error(UserInputError, "one S", pack_instances, [one, np.zeros((1, 4, 4, 3))], [np.zeros((1, 4))] * 2, 2)


# -------------------------------------------------------- InstanceImageFolder


def test_instance_image_folder_images_equal_image_folder(photos):
    folder, boxes = photos
    settings = dict(batch_size=2, training=True, resize_to=48, seed=3, workers=1)
    plain = ImageFolder(folder, 32, **settings)
    with_instances = InstanceImageFolder(folder, 32, boxes, min_variance=0.0, **settings)
    assert with_instances.files == plain.files and len(with_instances) == len(plain) == 2
    for epoch in (0, 1, 2):
        plain.epoch = with_instances.epoch = epoch
        for index in range(len(plain)):
            np.testing.assert_array_equal(with_instances[index]["images"], plain[index])
    evaluation = InstanceImageFolder(folder, 32, boxes, batch_size=3, resize_to=40, workers=1)
    expected = ImageFolder(folder, 32, batch_size=3, resize_to=40, workers=1)
    for index in range(len(expected)):
        np.testing.assert_array_equal(evaluation[index]["images"], expected[index])


def expected_instances(dataset, position, batch_image, resized):
    """Independently recover the crop offset and flip of a batch image, and the instances it shows.

    Returns (normalized boxes (K, 4) as (y0, x0, y1, x1), the corners in the crop window before the
    flip, flipped)."""
    size = dataset.image_size
    target = np.rint(batch_image * 255).astype(np.uint8)
    found = []
    for top in range(resized.shape[0] - size + 1):
        for left in range(resized.shape[1] - size + 1):
            window = resized[top : top + size, left : left + size]
            for flip in (False, True):
                if np.array_equal(window[:, ::-1] if flip else window, target):
                    found.append((top, left, flip))
    assert len(found) == 1, found
    top, left, flip = found[0]
    boxes = []
    for x0, y0, x1, y1 in dataset.instance_corners[position].tolist():
        area = (x1 - x0) * (y1 - y0)
        cx0, cy0 = min(max(x0 - left, 0), size), min(max(y0 - top, 0), size)
        cx1, cy1 = min(max(x1 - left, 0), size), min(max(y1 - top, 0), size)
        width, height = cx1 - cx0, cy1 - cy0
        if width * height >= 0.5 * area and width >= 4 and height >= 4:
            if flip:
                cx0, cx1 = size - cx1, size - cx0
            boxes.append([cy0 / size, cx0 / size, cy1 / size, cx1 / size])
    return np.asarray(boxes, np.float32).reshape(-1, 4), flip


def test_boxes_follow_resize_crop_and_flip(photos):
    folder, boxes = photos
    dataset = InstanceImageFolder(
        folder, 40, boxes, batch_size=5, training=True, shuffle=False, resize_to=56, instance_size=24,
        min_variance=0.0, seed=11, workers=1,
    )
    by_name = files_by_name(dataset)
    # Selection ran on the resized photos: boxes scaled from the files' pixels.
    scale = 56 / 128
    np.testing.assert_allclose(
        dataset.instance_corners[by_name["astronaut.png"]],
        [[b[0] * scale, b[1] * scale, (b[0] + b[2]) * scale, (b[1] + b[3]) * scale]
         for b in sorted(ASTRONAUT_BOXES, key=lambda b: -b[4])],
        rtol=1e-6,
    )
    assert len(dataset.instance_corners[by_name["chelsea.png"]]) == 1  # the low score is dropped
    assert len(dataset.instance_corners[by_name["coffee.png"]]) == 0
    flips, partly_visible = set(), 0
    for epoch in range(4):
        dataset.epoch = epoch
        batch = dataset[0]
        for row, position in enumerate(range(5)):  # not shuffled: the files in order
            resized = dataset.resized_image(int(position))
            expected, flip = expected_instances(dataset, int(position), batch["images"][row], resized)
            flips.add(flip)
            partly_visible += len(dataset.instance_corners[int(position)]) - len(expected)
            count = len(expected)
            np.testing.assert_array_equal(batch["mask"][row], [1.0] * count + [0.0] * (8 - count))
            np.testing.assert_allclose(batch["boxes"][row, :count], expected, atol=1e-6)
            assert not batch["boxes"][row, count:].any() and not batch["crops"][row, count:].any()
            # The crop of the batch image at the normalized box is the instance crop.
            image = np.rint(batch["images"][row] * 255).astype(np.uint8)
            for n in range(count):
                y0, x0, y1, x1 = (batch["boxes"][row, n] * 40).tolist()
                again = crop_instances(image, [[x0, y0, x1, y1]], 24)[0]
                np.testing.assert_allclose(again, batch["crops"][row, n], atol=2.5 / 255)
    assert flips == {False, True}
    assert partly_visible > 0  # some instances were only partly inside a random crop


def test_original_size_exif_and_jpeg_draft(photos):
    folder, boxes = photos
    rocket = load_image(folder / "rocket.jpg")
    assert rocket.shape == (64, 96, 3)  # upright
    dataset = InstanceImageFolder(folder, 32, boxes, batch_size=5, resize_to=32, min_variance=0.0, workers=1)
    by_name = files_by_name(dataset)
    # china.jpg (640 x 427) is decoded at a reduced JPEG scale; the boxes still refer to its full size.
    resized = dataset.resized_image(by_name["china.jpg"])
    sx, sy = resized.shape[1] / 640, resized.shape[0] / 427
    x, y, w, h, _ = CHINA_BOX
    np.testing.assert_allclose(
        dataset.instance_corners[by_name["china.jpg"]], [[x * sx, y * sy, (x + w) * sx, (y + h) * sy]], rtol=1e-5
    )
    resized = dataset.resized_image(by_name["rocket.jpg"])
    assert resized.shape == (32, 48, 3)
    np.testing.assert_allclose(dataset.instance_corners[by_name["rocket.jpg"]], [[15, 2, 35, 30]], rtol=1e-6)
    batch = dataset[0]
    row = by_name["rocket.jpg"]  # evaluation: files in order, centre crops
    np.testing.assert_allclose(batch["boxes"][row, 0], [2 / 32, 7 / 32, 30 / 32, 27 / 32], atol=1e-6)


def test_batches_mix_images_with_and_without_instances(photos):
    folder, boxes = photos
    dataset = InstanceImageFolder(
        folder, 32, boxes, batch_size=5, resize_to=32, instance_size=16, max_instances=4, min_variance=0.0,
        workers=1, name="fusion",
    )
    batch = dataset[0]
    assert batch["images"].shape == (5, 32, 32, 3) and batch["crops"].shape == (5, 4, 16, 16, 3)
    assert batch["boxes"].shape == (5, 4, 4) and batch["mask"].shape == (5, 4)
    counts = dict(zip([p.name for p in dataset.files], batch["mask"].sum(axis=1).tolist()))
    assert counts == {"astronaut.png": 3, "chelsea.png": 1, "china.jpg": 1, "coffee.png": 0, "rocket.jpg": 1}
    assert dataset.instance_counts == {"low score": 1}
    assert dataset.summary == (
        f"fusion: 5 images used, 0 skipped of 5 in {folder}/, 6 instances kept of 7 boxes (1 low score)"
    )
    samples = dataset.sample_inputs(2)
    for key in ("images", "crops", "boxes", "mask"):
        np.testing.assert_array_equal(samples[key], batch[key][:2])
    # The default variance threshold leaves out low-contrast instances, and max_instances caps the rest.
    strict = InstanceImageFolder(folder, 32, boxes, batch_size=5, resize_to=32, max_instances=2, workers=1)
    assert strict[0]["mask"].shape == (5, 2)
    assert strict.instance_counts.get("over max_instances", 0) + strict.instance_counts.get("low variance", 0) >= 1


def test_instance_image_folder_feeds_fit(photos):
    folder, boxes = photos
    dataset = InstanceImageFolder(
        folder, 16, boxes, batch_size=2, training=True, resize_to=24, instance_size=8, max_instances=3,
        min_variance=0.0, workers=1,
    )
    inputs = {
        "images": keras.Input((16, 16, 3), name="images"),
        "crops": keras.Input((3, 8, 8, 3), name="crops"),
        "boxes": keras.Input((3, 4), name="boxes"),
        "mask": keras.Input((3,), name="mask"),
    }
    pooled = keras.layers.Reshape((3, 8 * 8 * 3))(inputs["crops"])
    features = keras.layers.Concatenate()([pooled, inputs["boxes"]])
    weights = keras.layers.Dense(1, name="instance_weight")(features)
    instance_term = keras.ops.sum(keras.ops.squeeze(weights, -1) * inputs["mask"], axis=1, keepdims=True)
    image_term = keras.layers.Dense(1, name="image_weight")(keras.layers.Flatten()(inputs["images"]))
    model = ToyFusion(inputs=inputs, outputs=image_term + instance_term)
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


class ToyFusion(keras.Model):
    """A model of the fused inputs whose loss needs no targets."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return keras.ops.mean(keras.ops.square(y_pred))


# --------------------------------------------------------- InstanceCropFolder


def test_instance_crop_folder_counts_shapes_and_seeds(photos):
    folder, boxes = photos
    settings = dict(batch_size=4, training=True, resize_to=48, min_variance=0.0, workers=1, name="instances")
    crops = InstanceCropFolder(folder, 24, boxes, seed=1, **settings)
    assert len(crops.instances) == 6 and len(crops) == 1  # 6 instances, the partial batch dropped
    assert crops.summary == (
        f"instances: 5 images used, 0 skipped of 5 in {folder}/, 6 instances kept of 7 boxes (1 low score)"
    )
    names = sorted(crops.files[i].name for i, _ in crops.instances)
    assert names == ["astronaut.png"] * 3 + ["chelsea.png", "china.jpg", "rocket.jpg"]
    batch = crops[0]
    assert batch.shape == (4, 24, 24, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    # Every sample is an instance crop of its resized photo, flipped or not.
    references = [
        crop_instances(crops.folder.resized_image(index), corners[None], 24)[0] for index, corners in crops.instances
    ]
    for sample in batch:
        assert any(np.array_equal(sample, r) or np.array_equal(sample, r[:, ::-1]) for r in references)
    again = InstanceCropFolder(folder, 24, boxes, seed=1, **settings)
    np.testing.assert_array_equal(again[0], batch)
    other_seeds = [InstanceCropFolder(folder, 24, boxes, seed=s, **settings)[0] for s in (2, 3)]
    assert any(not np.array_equal(o, batch) for o in other_seeds)
    crops.on_epoch_end()
    assert crops.epoch == 1
    assert not np.array_equal(crops[0], batch)
    crops.epoch = 0
    np.testing.assert_array_equal(crops[0], batch)
    with pytest.raises(IndexError):
        crops[1]
    # Evaluation: every instance once, in order, unflipped; sample_images gives the first ones.
    evaluation = InstanceCropFolder(folder, 24, boxes, batch_size=4, resize_to=48, min_variance=0.0, workers=1)
    assert len(evaluation) == 2 and evaluation[1].shape == (2, 24, 24, 3)
    np.testing.assert_array_equal(np.concatenate([evaluation[0], evaluation[1]]), np.stack(references))
    np.testing.assert_array_equal(evaluation.sample_images(3), np.stack(references[:3]))


def test_instance_crop_folder_errors(photos, tmp_path):
    folder, boxes = photos
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(detections("not_here.png", [(0, 0, 10, 10, 1.0)])))
    message = one_line_error(
        NoImagesError, r"unknown\.json matched no usable instance", InstanceCropFolder, folder, 16, unknown,
        workers=1,
    )
    assert "0 instances kept of 0 boxes" in message
    message = one_line_error(NoImagesError, "matched no usable instance", InstanceCropFolder, folder, 16, boxes,
                             min_score=1.0, workers=1)
    assert message.endswith(": 5 images, 0 instances kept of 7 boxes (7 low score)")
    one_line_error(UserInputError, r"only 6 instances.*batch_size=8", InstanceCropFolder, folder, 16, boxes,
                   batch_size=8, training=True, min_variance=0.0, workers=1)
    one_line_error(UserInputError, r"min_score must be a number in \[0, 1\]", InstanceCropFolder, folder, 16,
                   boxes, min_score=2)
    one_line_error(UserInputError, "max_instances must be an integer", InstanceImageFolder, folder, 16, boxes,
                   max_instances=-1)
    one_line_error(UserInputError, "instance_size must be a positive integer", InstanceImageFolder, folder, 16,
                   boxes, instance_size=0)
    one_line_error(UserInputError, "with_labels must be False", InstanceImageFolder, folder, 16, boxes,
                   with_labels=True)
    one_line_error(UserInputError, r"missing\.json: boxes file or folder not found", InstanceImageFolder, folder, 16,
                   tmp_path / "missing.json")


# ----------------------------------------------------- make_instance_datasets


def test_make_instance_datasets_split_and_kinds(photos):
    folder, boxes = photos
    common = dict(validation_fraction=0.4, seed=2, resize_to=32, min_variance=0.0, workers=1)
    train, validation = make_instance_datasets(folder, 24, 2, boxes, "images", instance_size=12, **common)
    assert isinstance(train, InstanceImageFolder) and isinstance(validation, InstanceImageFolder)
    # The "images" sets leave out the photos without instances (one validation photo here).
    assert len(train.files) == 3 and len(validation.files) == 1
    assert validation.summary.endswith("; 1 photos without instances left out")
    assert not set(train.files) & set(validation.files)
    assert train.training and not validation.training and validation.drop_grayscale
    assert train.boxes is validation.boxes
    kept = sum(len(c) for c in train.instance_corners) + sum(len(c) for c in validation.instance_corners)
    assert kept == 6  # every instance is on one side of the split
    assert train[0]["crops"].shape == (2, 8, 12, 12, 3)

    train_crops, validation_crops = make_instance_datasets(folder, 24, 1, boxes, "crops", **common)
    assert isinstance(train_crops, InstanceCropFolder) and isinstance(validation_crops, InstanceCropFolder)
    assert train_crops.files == train.files and len(validation_crops.files) == 2
    assert set(validation.files) < set(validation_crops.files)
    assert len(train_crops.instances) + len(validation_crops.instances) == 6
    assert train_crops[0].shape == (1, 24, 24, 3)

    # Separate validation boxes: one box on each validation photo, none on the training photos.
    own_boxes = folder.parent / "validation_boxes.json"
    entries = [detections(p.relative_to(folder).as_posix(), [(0, 0, 30, 30, 1.0)]) for p in validation_crops.files]
    own_boxes.write_text(json.dumps(sum(entries, [])))
    own_train, own = make_instance_datasets(folder, 24, 2, boxes, "images", validation_boxes=own_boxes, **common)
    assert own.boxes.name == "validation_boxes.json" and own_train.boxes.name == "detections.json"
    assert [len(c) for c in own.instance_corners] == [1, 1]

    alone, none = make_instance_datasets(folder, 24, 2, boxes, "images", resize_to=32, workers=1, min_variance=0.0)
    assert none is None and len(alone.files) == 4
    one_line_error(UserInputError, "kind must be 'images' or 'crops', got 'boxes'", make_instance_datasets,
                   folder, 24, 2, boxes, "boxes")
    one_line_error(UserInputError, "validation_fraction", make_instance_datasets, folder, 24, 2, boxes, "crops",
                   validation_fraction=1.5)


def test_box_lookup_uses_paths_relative_to_the_folder(photos, tmp_path):
    folder, _ = photos
    # Two files called chelsea.png: only their relative paths tell them apart.
    other = tmp_path / "photos"
    shutil.copytree(folder, other)
    save(photo("chelsea.png", 96), other / "dogs" / "chelsea.png")
    entries = detections("cats/chelsea.png", CHELSEA_BOXES[:1]) + detections(
        "dogs/chelsea.png", [(10.0, 10.0, 60.0, 60.0, 1.0), (70.0, 10.0, 60.0, 60.0, 1.0)]
    )
    boxes = tmp_path / "two.json"
    boxes.write_text(json.dumps(entries))
    dataset = InstanceImageFolder(other, 32, boxes, resize_to=32, min_variance=0.0, workers=1)
    counts = {p.relative_to(other).as_posix(): len(c) for p, c in zip(dataset.files, dataset.instance_corners)}
    assert counts["cats/chelsea.png"] == 1 and counts["dogs/chelsea.png"] == 2
    assert Box(48.0, 19.2, 35.2, 38.4, 0.998) in dataset.boxes.for_image(other / "cats" / "chelsea.png", other)
    # Given as a list of files without a root, the common folder is the root.
    listed = InstanceImageFolder([other / "cats" / "chelsea.png", other / "dogs" / "chelsea.png"], 32, boxes,
                                 resize_to=32, min_variance=0.0, workers=1)
    assert [len(c) for c in listed.instance_corners] == [1, 2]
