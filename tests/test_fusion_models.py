"""Instance-aware fusion: the U-Net hook, box placement, the fusion network and its task.

Tiny configuration: UNetV1/UNetV2 with encoder (8, 16, 16, 16) and decoder (16, 16, 8)
at 32x32, instance crops of 32x32, N = 3 instances per image. Model inputs follow the
instance-aware data contract and are built here by hand from real photos.
"""

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image

from keras_colorize import Colorizer
from keras_colorize.color import normalize_l, rgb_to_lightness
from keras_colorize.errors import UserInputError
from keras_colorize.models import FusionColorizer, SimpleWeightModel, UNetV1, UNetV2, list_models
from keras_colorize.models.fusion import (
    WeightMapNetwork,
    box_masks,
    clone_generator,
    interpolation_matrices,
    place_in_boxes,
    snap_boxes,
)
from tests.data_helpers import photo
from tests.test_case import gradient, run_model_saving_test, run_serialization_test, to_numpy

TINY = {"encoder_filters": (8, 16, 16, 16), "decoder_filters": (16, 16, 8)}
SIZE = 32  # image size H = W
CROP = 32  # instance size S
COUNT = 3  # instances per image N

# Instances drawn by hand on the photos, as (y_min, x_min, y_max, x_max) fractions.
PHOTO_BOXES = {
    "astronaut.png": [(0.05, 0.3, 0.5, 0.72), (0.45, 0.0, 1.0, 0.45)],  # face, flag and arm
    "chelsea.png": [(0.1, 0.25, 0.75, 0.75)],  # the cat's head
    "coffee.png": [(0.0, 0.05, 0.8, 0.95), (0.55, 0.6, 1.0, 1.0), (0.0, 0.0, 0.3, 0.25)],
    "rocket.jpg": [],  # no instance: padding only
}


def tiny(cls=UNetV1, seed=0):
    keras.utils.set_random_seed(seed)
    return cls(**TINY)


def model_space_l(rgb):
    return normalize_l(rgb_to_lightness(ops.convert_to_tensor(rgb), "channels_last"))


def contract_batch(names):
    """The fused model's input dict for photos `names` (sRGB in [0, 1] images and crops)."""
    images = np.zeros((len(names), SIZE, SIZE, 3), "float32")
    crops = np.zeros((len(names), COUNT, CROP, CROP, 3), "float32")
    boxes = np.zeros((len(names), COUNT, 4), "float32")
    mask = np.zeros((len(names), COUNT), "float32")
    for b, name in enumerate(names):
        picture = Image.fromarray(photo(name))
        images[b] = np.asarray(picture.resize((SIZE, SIZE), Image.Resampling.BILINEAR), "float32") / 255.0
        for n, (y0, x0, y1, x1) in enumerate(PHOTO_BOXES[name]):
            corners = (x0 * picture.width, y0 * picture.height, x1 * picture.width, y1 * picture.height)
            crop = picture.resize((CROP, CROP), Image.Resampling.BILINEAR, box=corners)
            crops[b, n] = np.asarray(crop, "float32") / 255.0
            boxes[b, n] = (y0, x0, y1, x1)
            mask[b, n] = 1.0
    return {"images": images, "crops": crops, "boxes": boxes, "mask": mask}


def model_inputs(batch):
    """The contract batch in model space, the input of SimpleWeightModel."""
    return {
        "l": model_space_l(batch["images"]),
        "crops_l": model_space_l(batch["crops"]),
        "boxes": batch["boxes"],
        "mask": batch["mask"],
    }


@pytest.fixture(scope="module")
def batch():
    return contract_batch(["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"])


@pytest.fixture(scope="module")
def fusion_model():
    """Two independently initialised generators, so instances visibly change the output."""
    return SimpleWeightModel(tiny(UNetV1, seed=0), tiny(UNetV1, seed=1), filters=4)


# --------------------------------------------------------------------------- hook


@pytest.mark.parametrize("cls", [UNetV1, UNetV2])
def test_hook_runs_the_same_layers_as_the_model(cls):
    model = tiny(cls)
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 1)).astype("float32")
    seen = []

    def identity(point, features):
        seen.append((point, tuple(features.shape)))
        return features

    expected = to_numpy(model(x, training=False))
    np.testing.assert_array_equal(to_numpy(model.call_with_hook(x, identity, training=False)), expected)
    # Every fusion point in order, at its documented stride and width.
    channels, strides = model.fusion_point_channels, model.fusion_point_strides
    assert [p for p, _ in seen] == model.fusion_points
    assert model.fusion_points == [f"encoder_{i}" for i in (1, 2, 3, 4)] + [f"decoder_{i}" for i in (1, 2, 3)]
    for point, shape in seen:
        side = SIZE // strides[point]
        assert shape == (2, side, side, channels[point]), point
    skip = 16 if cls is UNetV1 else 0
    assert channels["decoder_1"] == 16 + skip and channels["decoder_3"] == 8 + (8 if cls is UNetV1 else 0)
    # A replaced map feeds the rest of the network; stop_at returns the map there.
    zeroed = model.call_with_hook(x, lambda p, f: f * 0.0 if p == "decoder_2" else f, training=False)
    assert not np.allclose(to_numpy(zeroed), expected)
    stopped = model.call_with_hook(x, identity, training=False, stop_at="encoder_3")
    assert tuple(stopped.shape) == (2, SIZE // 4, SIZE // 4, 16)
    with pytest.raises(UserInputError, match="unknown fusion point 'decoder_9'"):
        model.call_with_hook(x, identity, stop_at="decoder_9")


# --------------------------------------------------------------------------- placement


def test_snap_boxes_to_the_nearest_cell_edges():
    boxes = np.array(
        [
            [0.1, 0.0, 0.55, 1.0],  # 0.4 -> 0, 2.2 -> 2 rows; full width
            [0.5, 0.5, 0.5, 0.5],  # empty: one cell
            [0.95, 0.99, 1.0, 1.0],  # at the far corner: the last cell
            [-0.2, -0.1, 1.3, 0.06],  # outside the image: clipped; thin: one cell
            [0.125, 0.0625, 0.375, 0.1875],  # exactly on cell edges (halves round up)
        ],
        "float32",
    )
    got = to_numpy(snap_boxes(boxes, 4, 8))
    np.testing.assert_array_equal(got, [[0, 0, 2, 8], [2, 4, 3, 5], [3, 7, 4, 8], [0, 0, 4, 1], [1, 1, 2, 2]])
    assert got.dtype == np.int32


def reference_placement(features, boxes, mask, grid):
    """Resize each map with keras.ops.image.resize and paste it into a zero canvas."""
    cells = to_numpy(snap_boxes(boxes, *grid))
    batch, count = features.shape[:2]
    canvas = np.zeros((batch, count, *grid, features.shape[-1]), "float32")
    for b in range(batch):
        for n in range(count):
            if not mask[b, n]:
                continue
            r0, c0, r1, c1 = cells[b, n]
            resized = ops.image.resize(
                features[b, n], (r1 - r0, c1 - c0), interpolation="bilinear", antialias=False, data_format="channels_last"
            )
            canvas[b, n, r0:r1, c0:c1] = to_numpy(resized)
    return canvas


PLACEMENT_BOXES = np.array(
    [
        [[0.1, 0.2, 0.7, 0.9], [0.0, 0.0, 1.0, 1.0], [0.5, 0.0, 1.0, 0.3]],  # inside, whole grid, at the edges
        [[0.8, 0.75, 1.0, 1.0], [0.0, 0.5, 0.25, 0.6], [0.3, 0.3, 0.6, 0.6]],  # corner, thin, masked out
    ],
    "float32",
)
PLACEMENT_MASK = np.array([[1, 1, 1], [1, 1, 0]], "float32")


def test_placement_equals_resize_and_paste():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 3, 8, 6, 4)).astype("float32")
    grid = (16, 12)  # boxes both larger (upsampling) and smaller (downsampling) than 8x6
    placed = to_numpy(place_in_boxes(features, PLACEMENT_BOXES, PLACEMENT_MASK, grid))
    assert placed.shape == (2, 3, 16, 12, 4)
    np.testing.assert_allclose(placed, reference_placement(features, PLACEMENT_BOXES, PLACEMENT_MASK, grid), atol=1e-5)
    # A ramp survives exactly: a box the size of the map copies it.
    ramp = np.arange(8 * 6, dtype="float32").reshape(1, 1, 8, 6, 1)
    copied = to_numpy(place_in_boxes(ramp, np.array([[[0.5, 0.5, 1.0, 1.0]]], "float32"), np.ones((1, 1)), (16, 12)))
    np.testing.assert_allclose(copied[0, 0, 8:, 6:], ramp[0, 0], atol=1e-5)
    assert not copied[0, 0, :8].any() and not copied[0, 0, :, :6].any()
    # The masked-out instance is zero everywhere.
    assert not placed[1, 2].any()


def test_interpolation_matrices_and_box_masks():
    rows, columns = interpolation_matrices(PLACEMENT_BOXES, PLACEMENT_MASK, (16, 12), (8, 6))
    rows, columns = to_numpy(rows), to_numpy(columns)
    assert rows.shape == (2, 3, 16, 8) and columns.shape == (2, 3, 12, 6)
    masks = to_numpy(box_masks(PLACEMENT_BOXES, PLACEMENT_MASK, (16, 12)))
    assert masks.shape == (2, 3, 16, 12, 1)
    # Each row of a matrix inside the box interpolates (weights sum to 1); outside it is zero.
    inside_rows = rows.sum(-1)
    inside_columns = columns.sum(-1)
    np.testing.assert_allclose(masks[..., 0], inside_rows[..., :, None] * inside_columns[..., None, :], atol=1e-6)
    cells = to_numpy(snap_boxes(PLACEMENT_BOXES, 16, 12))
    r0, c0, r1, c1 = cells[0, 0]
    expected = np.zeros((16, 12))
    expected[r0:r1, c0:c1] = 1.0
    np.testing.assert_array_equal(masks[0, 0, ..., 0], expected)
    assert not masks[1, 2].any() and not rows[1, 2].any() and not columns[1, 2].any()


def test_placement_is_differentiable_in_the_features():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 3, 8, 6, 2)).astype("float32")
    got = gradient(lambda f: place_in_boxes(f, PLACEMENT_BOXES, PLACEMENT_MASK, (16, 12)), features)
    # The same gradient through keras.ops.image.resize of one instance's map.
    cells = to_numpy(snap_boxes(PLACEMENT_BOXES, 16, 12))
    r0, c0, r1, c1 = cells[0, 0]
    expected = gradient(
        lambda f: ops.image.resize(f, (r1 - r0, c1 - c0), antialias=False, data_format="channels_last"),
        features[0, 0],
    )
    np.testing.assert_allclose(got[0, 0], expected, atol=1e-5)
    assert not got[1, 2].any()  # the masked-out instance gets no gradient


# --------------------------------------------------------------------------- fusion network


def weight_map_parameters(channels, filters):
    return (9 * channels * filters + filters) + (9 * filters * filters + filters) + (9 * filters + 1)


def test_exact_parameter_count():
    full = tiny(UNetV1)
    model = SimpleWeightModel.from_generators(full, filters=4)
    assert model.fusion_points == ("decoder_1", "decoder_2")  # below full resolution
    # decoder_1 and decoder_2 of UNetV1 read 16 + 16 (skip) channels; two weight networks per point.
    fusion = 2 * (weight_map_parameters(32, 4) + weight_map_parameters(32, 4))
    assert fusion == 2 * 2 * 1_341
    assert model.count_params() == 2 * full.count_params() + fusion
    assert sum(int(np.prod(w.shape)) for w in model.full_weight_networks[0].weights) == 1_341
    network = WeightMapNetwork(filters=4)
    assert tuple(network(np.zeros((2, 8, 8, 32), "float32")).shape) == (2, 8, 8, 1)
    assert network.count_params() == 1_341
    assert [tuple(w.shape) for w in network.weights[::2]] == [(3, 3, 32, 4), (3, 3, 4, 4), (3, 3, 4, 1)]
    points = SimpleWeightModel.from_generators(tiny(UNetV2), fusion_points=["encoder_2", "decoder_3"])
    assert points.fusion_points == ("encoder_2", "decoder_3")
    expected = 2 * (weight_map_parameters(16, 16) + weight_map_parameters(8, 16))
    assert points.count_params() == 2 * points.full_generator.count_params() + expected


def test_weights_sum_to_one_and_vanish_outside_boxes(fusion_model, batch):
    inputs = model_inputs(batch)
    weights = fusion_model.fusion_weights(inputs)
    assert list(weights) == ["decoder_1", "decoder_2"]
    for point, side in (("decoder_1", 8), ("decoder_2", 16)):
        w = to_numpy(weights[point])
        assert w.shape == (4, COUNT + 1, side, side)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
        inside = to_numpy(box_masks(batch["boxes"], batch["mask"], side))[..., 0] > 0
        instance_weights = w[:, 1:]
        assert (instance_weights[~inside] == 0.0).all()  # outside the box and for padding: exactly 0
        assert (instance_weights[inside] > 0.0).all()
        uncovered = ~inside.any(axis=1)
        assert (w[:, 0][uncovered] == 1.0).all()  # background alone: exactly 1
        assert not instance_weights[3].any()  # the photo without instances


@pytest.mark.parametrize("point", ["decoder_1", "decoder_2"])
def test_fused_map_is_the_weighted_sum_of_the_feature_maps(batch, point):
    """At a fusion point: fused = W_bg * F_full + sum_i W_i * F_i, computed here directly."""
    model = SimpleWeightModel(tiny(UNetV1, seed=0), tiny(UNetV1, seed=1), fusion_points=[point], filters=4)
    inputs = model_inputs(batch)
    full_features = to_numpy(model.full_generator.call_with_hook(inputs["l"], lambda p, f: f, training=False, stop_at=point))
    flat_crops = ops.reshape(inputs["crops_l"], (-1, CROP, CROP, 1))
    crop_features = model.instance_generator.call_with_hook(flat_crops, lambda p, f: f, training=False, stop_at=point)
    side = full_features.shape[1]
    crop_features = ops.reshape(crop_features, (4, COUNT, *crop_features.shape[1:]))
    placed = to_numpy(place_in_boxes(crop_features, batch["boxes"], batch["mask"], side))  # (B, N, h, w, C)
    weights = to_numpy(model.fusion_weights(inputs)[point])[..., None]  # (B, N + 1, h, w, 1)
    expected = weights[:, 0] * full_features + (weights[:, 1:] * placed).sum(axis=1)
    assert np.abs(expected - full_features).max() > 1e-3  # the instances do change the map

    def substitute(name, features):
        return ops.convert_to_tensor(expected) if name == point else features

    downstream = to_numpy(model.full_generator.call_with_hook(inputs["l"], substitute, training=False))
    np.testing.assert_allclose(to_numpy(model(inputs)), downstream, atol=1e-5)


def test_no_instance_gives_exactly_the_full_generator(fusion_model, batch):
    inputs = dict(model_inputs(batch), mask=np.zeros((4, COUNT), "float32"))
    expected = to_numpy(fusion_model.full_generator(inputs["l"], training=False))
    np.testing.assert_array_equal(to_numpy(fusion_model(inputs)), expected)
    np.testing.assert_array_equal(to_numpy(fusion_model(inputs, training=True)), expected)
    # The same in the compiled prediction function.
    np.testing.assert_array_equal(
        to_numpy(fusion_model.predict_on_batch(inputs)), to_numpy(fusion_model.full_generator.predict_on_batch(inputs["l"]))
    )
    # A plain L tensor runs the full generator alone.
    np.testing.assert_array_equal(to_numpy(fusion_model(inputs["l"])), expected)
    # The photo without instances in a batch with instances is its full colorization too.
    mixed = to_numpy(fusion_model(model_inputs(batch)))
    np.testing.assert_array_equal(mixed[3], expected[3])


def test_instances_change_the_output_inside_their_box(fusion_model, batch):
    inputs = model_inputs(batch)
    fused = to_numpy(fusion_model(inputs))
    full = to_numpy(fusion_model.full_generator(inputs["l"], training=False))
    y0, x0, y1, x1 = (np.array(PHOTO_BOXES["chelsea.png"][0]) * SIZE).astype(int)
    inside = np.abs(fused[1, y0:y1, x0:x1] - full[1, y0:y1, x0:x1])
    assert inside.mean() > 1e-3
    assert np.abs(fused).max() <= 1.0


def test_one_line_errors():
    with pytest.raises(UserInputError, match=r"same configuration \(they differ in: UNetV1 vs UNetV2\)") as info:
        SimpleWeightModel(tiny(UNetV1), tiny(UNetV2))
    assert "\n" not in str(info.value)
    other = UNetV1(encoder_filters=(8, 16, 16, 16), decoder_filters=(16, 16, 16))
    with pytest.raises(UserInputError, match="differ in: decoder_filters"):
        SimpleWeightModel(tiny(UNetV1), other)
    with pytest.raises(UserInputError, match="instance_generator must be a UNetV1 or UNetV2, got Sequential"):
        SimpleWeightModel(tiny(UNetV1), keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(UserInputError, match=r"unknown fusion point 'decoder_4' \(valid: encoder_1, .*, decoder_3\)"):
        SimpleWeightModel.from_generators(tiny(UNetV1), fusion_points=["decoder_1", "decoder_4"])
    with pytest.raises(UserInputError, match="instance_size 20 must be a positive multiple of 8"):
        FusionColorizer(SimpleWeightModel.from_generators(tiny(UNetV1)), image_size=SIZE, instance_size=20)


def test_from_generators_clones_the_full_generator():
    full = tiny(UNetV1)
    model = SimpleWeightModel.from_generators(full)
    clone = model.instance_generator
    assert clone is not full and type(clone) is UNetV1 and clone.name == f"{full.name}_instance"
    for mine, theirs in zip(clone.get_weights(), full.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert clone_generator(full).name == full.name
    assert "SimpleWeightModel" in list_models(role="fusion") and "SimpleWeightModel" not in list_models("generator")


# --------------------------------------------------------------------------- task


def fusion_colorizer(seed=0, **kwargs):
    full = tiny(UNetV1, seed=seed)
    model = SimpleWeightModel.from_generators(full, filters=4)
    return FusionColorizer(model, image_size=SIZE, instance_size=CROP, max_instances=COUNT, **kwargs)


def test_training_updates_only_the_weight_networks(batch):
    colorizer = fusion_colorizer()
    model = colorizer.fusion_model
    assert not model.full_generator.trainable and not model.instance_generator.trainable
    assert len(colorizer.trainable_weights) == 2 * 2 * 6  # two points, two networks, three convolutions
    colorizer.compile(optimizer=keras.optimizers.Adam(1e-2), loss="huber")
    generators = [[w.copy() for w in g.get_weights()] for g in (model.full_generator, model.instance_generator)]
    before = [to_numpy(w).copy() for w in colorizer.trainable_weights]
    history = colorizer.fit(batch, batch_size=2, epochs=1, verbose=0)  # two steps
    assert int(colorizer.optimizer.iterations) == 2
    assert np.isfinite(history.history["loss"]).all() and "psnr" in history.history
    after = [to_numpy(w) for w in colorizer.trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every weight network learned
    for generator, saved in zip((model.full_generator, model.instance_generator), generators):
        for now, then in zip(generator.get_weights(), saved):  # batch-norm statistics included
            np.testing.assert_array_equal(now, then)
    # The loss is the compiled loss on the images' own ab.
    from keras_colorize.color import rgb_to_model_inputs

    predicted = colorizer(batch, training=False)
    _, target = rgb_to_model_inputs(batch["images"], "channels_last")
    expected = float(to_numpy(keras.losses.Huber()(target, predicted)))
    got = float(to_numpy(colorizer.compute_loss(x=batch, y=None, y_pred=predicted, training=False)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_serialization_and_saving(batch, tmp_path):
    colorizer = fusion_colorizer()
    clone = run_serialization_test(colorizer.fusion_model)
    assert clone.fusion_points == ("decoder_1", "decoder_2") and clone.filters == 4
    assert clone.count_params() == colorizer.fusion_model.count_params()
    config = colorizer.get_config()
    assert config["instance_size"] == CROP and config["max_instances"] == COUNT and config["min_score"] == 0.99
    assert len(run_serialization_test(colorizer).trainable_weights) == len(colorizer.trainable_weights) == 24
    loaded = run_model_saving_test(colorizer, batch, tmp_path / "fusion.keras")
    np.testing.assert_array_equal(to_numpy(loaded(batch, training=False)), to_numpy(colorizer(batch, training=False)))
    assert len(loaded.trainable_weights) == 24 and loaded.instance_size == CROP  # generators stay frozen


def test_colorize_with_and_without_instances():
    from keras_colorize.data.boxes import Box

    colorizer = fusion_colorizer(seed=2, min_variance=10.0)
    image = photo("chelsea.png", short_side=72)  # 108x72
    height, width = image.shape[:2]
    plain = Colorizer(colorizer.fusion_model.full_generator, image_size=SIZE).colorize(image)
    np.testing.assert_array_equal(colorizer.colorize(image), plain)
    # Boxes that selection drops (low score) leave the full-image colorization.
    head = Box(0.25 * width, 0.1 * height, 0.5 * width, 0.65 * height, score=0.995)
    weak = Box(head.x, head.y, head.width, head.height, score=0.5)
    np.testing.assert_array_equal(colorizer.colorize(image, boxes=[weak]), plain)
    fused = colorizer.colorize(image, boxes=[head])
    assert fused.shape == image.shape and fused.dtype == np.uint8
    x0, y0, x1, y1 = (int(v) for v in head.corners)
    assert np.abs(fused[y0:y1, x0:x1].astype(int) - plain[y0:y1, x0:x1]).mean() > 0.05
    gray = image.mean(axis=-1).astype("uint8")
    assert colorizer.colorize(gray, boxes=[head]).shape == image.shape
