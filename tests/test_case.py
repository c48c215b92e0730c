"""Shared test helpers: serialization, saving, colorizer and cross-backend checks, the browser."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np

from keras_colorize.colorizer import ab_output

BACKENDS = ("tensorflow", "jax", "torch")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")


def chromium():
    """The path of a Chromium or Chrome binary; the test is skipped (with how to install it) when none is on PATH."""
    import pytest

    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium or Chrome on PATH (install it with: apt-get install -y chromium)")


def invoke_cli(*args):
    """Run `keras-colorize ARGS...` in-process (click's CliRunner); arguments become strings."""
    from click.testing import CliRunner

    from keras_colorize.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    """A user mistake: exit status 2 and one `error: ...` line holding every fragment."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def gradient(fn, x):
    """d sum(fn(x)) / dx on the current backend, as NumPy (a test-side seam)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(fn(variable))
        return tape.gradient(total, variable).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda v: jnp.sum(fn(v)))(jnp.asarray(x)))
    import torch

    tensor = torch.tensor(x, requires_grad=True)
    fn(tensor).sum().backward()
    return tensor.grad.numpy()


def run_serialization_test(instance):
    """get_config -> from_config gives an equal config, and JSON survives."""
    config = instance.get_config()
    json.dumps(keras.saving.serialize_keras_object(instance))
    clone = type(instance).from_config(config)
    assert clone.get_config() == config
    return clone


def run_model_saving_test(model, inputs, path):
    """Save to `.keras`, load, and compare outputs exactly (inference mode)."""
    expected = keras.tree.map_structure(to_numpy, model(inputs, training=False))
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    got = keras.tree.map_structure(to_numpy, loaded(inputs, training=False))
    keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), got, expected)
    return loaded


def run_colorizer_test(colorizer, images, loss="huber", steps=2):
    """Fit a few steps on sRGB `images`: finite loss, weights change, shapes hold."""
    colorizer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    before = [to_numpy(w).copy() for w in colorizer.trainable_weights]
    history = colorizer.fit(images, batch_size=max(1, len(images) // steps), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = [to_numpy(w) for w in colorizer.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert int(colorizer.optimizer.iterations) == steps
    ab = to_numpy(ab_output(colorizer(images, training=False)))
    assert ab.shape == images.shape[:-1] + (2,)
    assert np.abs(ab).max() <= 1.0
    return history


def run_in_backend(backend, code, timeout=300):
    """Run Python `code` in a fresh process under `backend`; return its last stdout line."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def other_backend():
    """The next backend after the current one, for cross-backend round trips."""
    current = keras.backend.backend()
    return BACKENDS[(BACKENDS.index(current) + 1) % len(BACKENDS)]
