"""Data-parallel training (`train.distribution: data_parallel`) on 2 virtual CPU devices.

Each run is a fresh process (the device count is fixed before the backend starts):
JAX gets `--xla_force_host_platform_device_count=2` in XLA_FLAGS, TensorFlow two
logical CPU devices. A 2-device run and a 1-device run of the same model, the same
initial weights, the same photos and the same global batch must log the same
losses and end with the same weights.

Tolerances: the two runs differ only in the order of float32 reductions (the batch
mean is summed per device, then across devices), a relative difference of about
1e-7 per operation; losses are compared at rtol 1e-4. The optimizer is SGD
(learning rate 0.05): Adam would turn the rounding noise of gradients that are zero
in exact arithmetic (a convolution bias before batch normalization) into full
learning-rate steps of random sign. Weights are compared at atol 1e-5 and rtol
1e-4, far below the changes that two steps make (checked to be above 1e-3).

TensorFlow's MirroredStrategy normalises batches per replica (BatchNormalization
statistics are not synchronised), so its comparison uses networks without batch
normalization; JAX computes the step on the global batch and is compared with the
zoo's U-Net and a batch-normalised PatchGAN.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import yaml

from tests.test_case import REPO_ROOT

BACKEND = keras.backend.backend()

needs_devices = pytest.mark.skipif(
    BACKEND == "torch",
    reason="data_parallel is not supported on the PyTorch backend: Keras's distribution API has no PyTorch "
    "implementation and fit() runs on one device",
)

PRELUDE = """
import json, os, sys
devices = int(os.environ["TEST_DEVICES"])
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
import keras
import numpy as np
"""

TRAIN = """
from keras_colorize.colorizer import Colorizer
from keras_colorize.models import PatchGANDiscriminator, UNetV1
from keras_colorize.training import GANTrainer
from keras_colorize.training.distribution import data_parallel

kind, weights_path, images_path = sys.argv[1:4]
images = np.load(images_path)
backend = keras.backend.backend()


def generator():
    if backend == "jax":
        return UNetV1(encoder_filters=(8, 16), decoder_filters=(8,), dropout_blocks=0, name="generator")
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="g_conv_1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="g_conv_2")(x)
    outputs = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="g_out")(x)
    return keras.Model(inputs, outputs, name="generator")


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({k: float(v) for k, v in logs.items()})


with data_parallel("data_parallel" if devices > 1 else None, batch_size=4, say=lambda line: None) as replicas:
    keras.utils.set_random_seed(0)
    if kind == "colorizer":
        model = Colorizer(generator(), image_size=32)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="l1", metrics=[])
    else:
        normalization = "batch" if backend == "jax" else None
        discriminator = PatchGANDiscriminator(filters=(8, 16, 16), normalization=normalization, name="adversary")
        model = GANTrainer(generator(), discriminator)
        model.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05))
    model.build((None, 32, 32, 3))
    if os.path.exists(weights_path):
        model.set_weights(list(np.load(weights_path).values()))
    else:
        np.savez(weights_path, *model.get_weights())
    record = Record()
    model.fit(images, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    final = [keras.ops.convert_to_numpy(w) for w in model.weights]
    np.savez(weights_path + f".after{devices}.npz", *final)
print(json.dumps({"replicas": replicas, "devices": len(keras.distribution.list_devices()), "steps": record.steps}))
"""


def run_on_devices(devices, code, *args, timeout=300):
    """Run `code` in a fresh process of this backend with `devices` CPU devices; its last line as JSON."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=REPO_ROOT, TEST_DEVICES=str(devices))
    env.pop("TF_CONFIG", None)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def photos_32(photos_64):
    """Eight real photos at 32x32 (the seven and a mirrored one): sRGB in [0, 1], float32."""
    small = photos_64[:, ::2, ::2, :]
    return np.concatenate([small, small[:1, :, ::-1]]).astype("float32")


@needs_devices
@pytest.mark.parametrize("kind", ["colorizer", "gan"])
def test_two_devices_match_one_device(kind, photos_32, tmp_path):
    images_path = tmp_path / "images.npy"
    np.save(images_path, photos_32)
    weights = tmp_path / "initial.npz"
    one = json.loads(run_on_devices(1, PRELUDE + TRAIN, kind, weights, images_path))
    two = json.loads(run_on_devices(2, PRELUDE + TRAIN, kind, weights, images_path))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert two["devices"] == 2
    assert len(one["steps"]) == len(two["steps"]) == 2
    for step_one, step_two in zip(one["steps"], two["steps"]):
        assert step_one.keys() == step_two.keys()
        for name in step_one:
            np.testing.assert_allclose(step_two[name], step_one[name], rtol=1e-4, err_msg=name)
    initial = list(np.load(weights).values())
    after_one = list(np.load(str(weights) + ".after1.npz").values())
    after_two = list(np.load(str(weights) + ".after2.npz").values())
    assert max(np.abs(a - b).max() for a, b in zip(initial, after_one)) > 1e-3  # training moved the weights
    for a, b in zip(after_one, after_two):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-4)


RUN = """
from keras_colorize.training import run_training

recipe_path, run_dir = sys.argv[1:3]
run_training(recipe_path, run_dir=run_dir, verbose=0)
print(json.dumps({"devices": len(keras.distribution.list_devices())}))
"""


@needs_devices
def test_run_training_with_the_recipe_key(tmp_path, photo_paths):
    recipe = {
        "name": "tiny_data_parallel",
        "model": {"name": "UNetV1", "encoder_filters": [8, 16], "decoder_filters": [8]},
        "colorizer": {"image_size": 32, "loss": "l1"},
        "data": {"train": "samples", "workers": 1},
        "train": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "num_samples": 2,
                  "distribution": "data_parallel"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_dir = tmp_path / "run"
    result = json.loads(run_on_devices(2, PRELUDE + RUN, path, run_dir))
    assert result["devices"] == 2
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert saved["train"]["distribution"] == "data_parallel"
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 2
    loss = float(history[1].split(",")[history[0].split(",").index("loss")])
    assert np.isfinite(loss)
    assert (run_dir / "checkpoints" / "last.keras").is_file()


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch backend's refusal")
def test_data_parallel_on_torch_is_a_one_line_error():
    from keras_colorize.training.distribution import DistributionError, check_distribution

    with pytest.raises(DistributionError, match="not supported on the PyTorch backend") as info:
        check_distribution("data_parallel")
    assert "\n" not in str(info.value)


def test_unknown_distribution_is_a_clear_error():
    from keras_colorize.errors import UserInputError
    from keras_colorize.training.distribution import check_distribution

    assert check_distribution(None) is None
    with pytest.raises(UserInputError, match="train.distribution must be one of data_parallel"):
        check_distribution("model_parallel")


def test_recipe_rejects_an_unknown_distribution(tmp_path):
    from keras_colorize.recipes import RecipeError, load_recipe

    recipe = {"model": {"name": "UNetV1"}, "data": {"train": "samples"}, "train": {"distribution": "everywhere"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match="train.distribution"):
        load_recipe(path)
    assert load_recipe(path, overrides=["train.distribution=data_parallel"])["train"]["distribution"] == "data_parallel"


@pytest.mark.skipif(BACKEND != "jax", reason="the batch-size check applies to JAX's even sharding")
def test_jax_batch_must_split_evenly():
    code = PRELUDE + """
from keras_colorize.training.distribution import DistributionError, data_parallel
try:
    with data_parallel("data_parallel", batch_size=3, say=lambda line: None):
        pass
except DistributionError as error:
    print(json.dumps(str(error)))
"""
    message = json.loads(run_on_devices(2, code))
    assert "train.batch_size 3 must be divisible by the 2 devices" in message
