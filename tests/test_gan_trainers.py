"""GAN and WGAN-GP trainers and the gradient seam, on the current Keras backend."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_colorize.color import rgb_to_model_inputs
from keras_colorize.colorizer import gray_baseline
from keras_colorize.errors import UserInputError
from keras_colorize.models import ChromaGANGenerator, PatchGANDiscriminator, UNetV1
from keras_colorize.training import GANTrainer, SampleGrid, TerminateOnNonFinite, WGANGPTrainer
from keras_colorize.training import gradients
from keras_colorize.training.gradients import input_gradients, value_and_gradients
from tests.test_case import gradient, run_serialization_test, to_numpy

NUM_CLASSES = 3
GAN_LOGS = {"loss", "d_loss", "g_adv", "g_rec"}
WGAN_LOGS = {"loss", "critic_loss", "gp", "g_adv", "g_rec"}
CLASS_LOGS = {"g_class", "class_accuracy"}


@pytest.fixture(scope="module")
def photos_32(photos_64):
    """Six real photos at 32x32 (2x2 mean pooling): sRGB float32 in [0, 1], (6, 32, 32, 3)."""
    return photos_64[:6].reshape(6, 32, 2, 32, 2, 3).mean(axis=(2, 4)).astype("float32")


def tiny_unet():
    return UNetV1(encoder_filters=(8, 16, 16), decoder_filters=(16, 8), name="generator")


def tiny_chromagan():
    return ChromaGANGenerator(
        num_classes=NUM_CLASSES,
        image_size=32,
        encoder_filters=(8, 16, 16, 16, 16),
        decoder_filters=(16, 16, 16, 8),
        branch_filters=(16, 16),
        branch_from=3,
        fusion_units=(32, 16),
        head_units=(32, 16),
        name="generator",
    )


def tiny_patchgan(normalization="batch"):
    return PatchGANDiscriminator(filters=(8, 16, 16, 16), normalization=normalization, name="adversary")


def tiny_teacher():
    """A small real classifier: gray sRGB in [0, 1], (N, 32, 32, 3) -> class probabilities."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="teacher_conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="teacher_pool")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="teacher_probabilities")(x)
    return keras.Model(inputs, outputs, name="teacher")


def adam(learning_rate=1e-3):
    return keras.optimizers.Adam(learning_rate, beta_1=0.5)


def snapshot(variables):
    return [to_numpy(v).copy() for v in variables]


def changed(before, variables):
    return [not np.array_equal(b, to_numpy(v)) for b, v in zip(before, variables)]


def moving_statistics(model):
    return [v for v in model.non_trainable_variables if "moving" in v.path]


def assert_finite_logs(history, names):
    assert set(history.history) == names
    for name in names:
        assert np.isfinite(history.history[name]).all(), (name, history.history[name])


# ------------------------------------------------------------------- the seam
def test_seam_first_and_second_order_gradients():
    w = keras.Variable(np.array([0.5, -2.0], "float32"), name="w")
    x = np.array([1.5, 3.0], "float32")

    # First order: d/dw sum(w^3) = 3 w^2.
    (loss, aux), (grad,) = value_and_gradients(lambda: (ops.sum(w * w * w), 7.0), [w])
    np.testing.assert_allclose(to_numpy(loss), 0.125 - 8.0, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(grad), [0.75, 12.0], rtol=1e-6)

    # Input gradient: d/dx sum(w x^3) = 3 w x^2.
    g = input_gradients(lambda t: w * t**3, ops.convert_to_tensor(x))
    np.testing.assert_allclose(to_numpy(g), 3 * np.array([0.5, -2.0]) * x**2, rtol=1e-6)

    # Second order: loss = sum((3 w x^2)^2) = sum(9 w^2 x^4); d/dw = 18 w x^4.
    def penalty():
        h = input_gradients(lambda t: w * t**3, ops.convert_to_tensor(x))
        return ops.sum(h * h), None

    (value, _), (grad,) = value_and_gradients(penalty, [w])
    np.testing.assert_allclose(to_numpy(value), np.sum(9 * np.array([0.25, 4.0]) * x**4), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(grad), 18 * np.array([0.5, -2.0]) * x**4, rtol=1e-5)

    # Variable updates inside the differentiated function (BatchNorm statistics) are kept.
    norm = keras.layers.BatchNormalization(momentum=0.5)
    norm.build((None, 2))
    batch = ops.convert_to_tensor(np.array([[1.0, 2.0], [3.0, 6.0]], "float32"))
    (_, _), (gamma_grad,) = value_and_gradients(lambda: (ops.sum(norm(batch, training=True) * w), None), [norm.gamma])
    np.testing.assert_allclose(to_numpy(norm.moving_mean), [1.0, 2.0], rtol=1e-6)  # 0.5 * 0 + 0.5 * mean
    np.testing.assert_allclose(to_numpy(gamma_grad), [0.0, 0.0], atol=1e-5)  # normalised columns sum to 0

    # A variable the loss does not read gets a zero gradient.
    unused = keras.Variable(np.ones((3,), "float32"), name="unused")
    _, (_, zero) = value_and_gradients(lambda: (ops.sum(w), None), [w, unused])
    np.testing.assert_array_equal(to_numpy(zero), np.zeros(3))


# ---------------------------------------------------------------- GANTrainer
def test_gan_trainer_fit_updates_both_networks(photos_32, tmp_path):
    keras.utils.set_random_seed(1)
    trainer = GANTrainer(tiny_unet(), tiny_patchgan())
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    generator_weights = snapshot(trainer.generator.trainable_variables)
    discriminator_weights = snapshot(trainer.discriminator.trainable_variables)
    statistics = moving_statistics(trainer.generator) + moving_statistics(trainer.discriminator)
    assert len(moving_statistics(trainer.discriminator)) > 0
    statistics_before = snapshot(statistics)

    history = trainer.fit(
        photos_32, batch_size=2, epochs=1, verbose=0, callbacks=[SampleGrid(photos_32[:2], tmp_path)]
    )

    assert (tmp_path / "epoch_001.png").is_file()
    assert int(trainer.generator_optimizer.iterations) == 3
    assert int(trainer.discriminator_optimizer.iterations) == 3
    assert int(trainer.optimizer.iterations) == 3
    assert all(changed(generator_weights, trainer.generator.trainable_variables))
    assert all(changed(discriminator_weights, trainer.discriminator.trainable_variables))
    assert all(changed(statistics_before, statistics))
    assert_finite_logs(history, GAN_LOGS)
    assert history.history["d_loss"][0] > 0 and history.history["g_rec"][0] > 0

    rgb = trainer.predict_rgb(photos_32[:2])
    assert rgb.shape == (2, 32, 32, 3) and 0.0 <= rgb.min() and rgb.max() <= 1.0
    assert not np.allclose(rgb, gray_baseline(photos_32[:2]), atol=1e-3)  # the generator adds colour
    colorizer = trainer.colorizer(image_size=32)
    assert colorizer.generator is trainer.generator and colorizer.image_size == (32, 32)


@pytest.mark.parametrize("trainer_class", [GANTrainer, WGANGPTrainer])
def test_perceptual_term_through_a_frozen_lpips(trainer_class, photos_32, lpips_weights_dir, tmp_path):
    from keras_colorize.loading import load_checkpoint
    from keras_colorize.metrics import lpips_distance

    weights_file = tmp_path / "lpips_alex.npz"
    weights_file.write_bytes((lpips_weights_dir / "lpips_alex.npz").read_bytes())
    keras.utils.set_random_seed(2)
    adversary = tiny_patchgan("batch" if trainer_class is GANTrainer else None)
    extra = {} if trainer_class is GANTrainer else {"n_critic": 1, "lambda_class": 0.0}
    trainer = trainer_class(
        tiny_unet(), adversary, lambda_perceptual=0.5, perceptual_weights=weights_file, **extra
    )
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    # The network holds the converted weights: it equals the metric on the same images.
    reference = to_numpy(lpips_distance(photos_32[:2], photos_32[2:4], weights=weights_file))
    np.testing.assert_allclose(to_numpy(trainer.perceptual([photos_32[:2], photos_32[2:4]])), reference, rtol=1e-5)
    lpips_before = snapshot(trainer.perceptual.variables)
    generator_before = snapshot(trainer.generator.trainable_variables)
    frozen = {id(v) for v in trainer.perceptual.variables}
    assert not any(id(v) in frozen for v in trainer.trainable_variables)

    history = trainer.fit(photos_32, batch_size=2, epochs=1, verbose=0, shuffle=False)

    logs = (GAN_LOGS if trainer_class is GANTrainer else WGAN_LOGS) | {"g_perceptual"}
    assert_finite_logs(history, logs)
    assert 0 < history.history["g_perceptual"][0] < 1
    assert not any(changed(lpips_before, trainer.perceptual.variables))  # frozen
    assert all(changed(generator_before, trainer.generator.trainable_variables))

    # A saved trainer loads without the weights file: the checkpoint holds them.
    path = tmp_path / "trainer.keras"
    trainer.save(path)
    weights_file.unlink()
    loaded = load_checkpoint(path)
    assert loaded.lambda_perceptual == 0.5 and loaded.perceptual_weights == str(weights_file)
    for expected, variable in zip(lpips_before, loaded.perceptual.variables):
        np.testing.assert_array_equal(to_numpy(variable), expected)


def test_gan_trainer_class_branch_with_labels(photos_32):
    keras.utils.set_random_seed(2)
    trainer = GANTrainer(tiny_chromagan(), tiny_patchgan(), lambda_class=1.0)
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    labels = np.array([0, 1, 2, 0, 1, 2], "int32")
    head = [v for v in trainer.generator.trainable_variables if "head" in v.path]
    assert head
    head_before = snapshot(head)

    history = trainer.fit(photos_32, labels, batch_size=3, epochs=1, verbose=0)

    assert_finite_logs(history, GAN_LOGS | CLASS_LOGS)
    assert history.history["g_class"][0] > 0
    assert 0.0 <= history.history["class_accuracy"][0] <= 1.0
    assert all(changed(head_before, head))
    assert int(trainer.generator_optimizer.iterations) == 2

    with pytest.raises(UserInputError, match="labels"):
        trainer.fit(photos_32, batch_size=3, epochs=1, verbose=0)


# ------------------------------------------------------------- WGANGPTrainer
def test_wgan_gp_trainer_updates_generator_every_n_critic_batches(photos_32):
    keras.utils.set_random_seed(3)
    trainer = WGANGPTrainer(tiny_unet(), tiny_patchgan(normalization=None), n_critic=3, seed=0)
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    generator_weights = snapshot(trainer.generator.trainable_variables)
    # The Wasserstein loss does not depend on the critic's last bias (it cancels): check the kernels.
    critic_kernels = [v for v in trainer.discriminator.trainable_variables if v.path.endswith("kernel")]
    critic_weights = snapshot(critic_kernels)
    statistics = moving_statistics(trainer.generator)
    statistics_before = snapshot(statistics)

    # Batches 1 and 2: critic steps only; the generator and its optimizer do not move.
    trainer.fit(photos_32[:4], batch_size=2, epochs=1, verbose=0)
    assert int(trainer.discriminator_optimizer.iterations) == 2
    assert int(trainer.generator_optimizer.iterations) == 0
    assert not any(changed(generator_weights, trainer.generator.trainable_variables))
    assert all(changed(critic_weights, critic_kernels))
    assert all(changed(statistics_before, statistics))  # fakes are generated in training mode

    # Batches 3 to 8: generator steps on batches 3 and 6.
    history = trainer.fit(photos_32, batch_size=2, epochs=2, verbose=0)
    assert int(trainer.discriminator_optimizer.iterations) == 8
    assert int(trainer.generator_optimizer.iterations) == 2
    assert int(trainer.optimizer.iterations) == 8
    assert all(changed(generator_weights, trainer.generator.trainable_variables))
    assert_finite_logs(history, WGAN_LOGS)
    assert all(g > 0 for g in history.history["gp"])


def test_wgan_gp_periodic_steps_equal_the_in_graph_condition(photos_32):
    """On JAX, compiled `fit()` runs two compiled steps chosen per batch (no
    `lax.cond`); with three steps per execution (or eagerly on PyTorch, which runs
    one step per execution) the generator update is the in-graph condition. Both
    give the same weights and logs."""
    control = {"run_eagerly": True} if keras.backend.backend() == "torch" else {"steps_per_execution": 3}
    results = []
    for options in ({}, control):
        keras.utils.set_random_seed(3)
        trainer = WGANGPTrainer(tiny_unet(), tiny_patchgan(normalization=None), n_critic=2, seed=0)
        # SGD: weight changes proportional to the gradients (Adam would amplify rounding near zero).
        trainer.compile(
            generator_optimizer=keras.optimizers.SGD(0.05), discriminator_optimizer=keras.optimizers.SGD(0.05), **options
        )
        history = trainer.fit(photos_32[:3], batch_size=1, epochs=1, verbose=0, shuffle=False)
        assert int(trainer.generator_optimizer.iterations) == 1  # batch 2 of 3
        periodic = gradients.periodic_train_function(trainer, trainer.n_critic)
        assert (periodic is not None) == (keras.backend.backend() == "jax" and not options)
        results.append((snapshot(trainer.generator.trainable_variables + trainer.discriminator.trainable_variables), history.history))
    (weights_a, history_a), (weights_b, history_b) = results
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for name in history_a:
        np.testing.assert_allclose(history_a[name], history_b[name], rtol=1e-4, atol=1e-5)


def test_wgan_gp_trainer_teacher_kl_without_labels_and_clipping(photos_32):
    keras.utils.set_random_seed(4)
    teacher = tiny_teacher()
    teacher_weights = snapshot(teacher.weights)
    trainer = WGANGPTrainer(
        tiny_chromagan(),
        tiny_patchgan(normalization=None),
        lambda_class=1.0,
        class_target="teacher",
        teacher=teacher,
        n_critic=1,
        clip_value=0.05,
    )
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam(1e-1))

    history = trainer.fit(photos_32, batch_size=3, epochs=1, verbose=0)

    assert_finite_logs(history, WGAN_LOGS | CLASS_LOGS)
    assert history.history["g_class"][0] > 0  # KL divergence to the teacher
    assert int(trainer.generator_optimizer.iterations) == 2
    assert not any(changed(teacher_weights, teacher.weights))
    assert not {id(v) for v in teacher.weights} & {id(v) for v in trainer.trainable_variables}
    for variable in trainer.discriminator.trainable_variables:
        assert np.abs(to_numpy(variable)).max() <= 0.05 + 1e-7


def test_gradient_penalty_matches_direct_computation(photos_32):
    keras.utils.set_random_seed(5)
    trainer = WGANGPTrainer(tiny_unet(), tiny_patchgan(normalization=None))
    l_norm, real_ab = (to_numpy(t) for t in rgb_to_model_inputs(ops.convert_to_tensor(photos_32[:4]), "channels_last"))
    fake_ab = np.random.default_rng(0).uniform(-0.5, 0.5, real_ab.shape).astype("float32")
    alpha = np.array([0.0, 0.3, 0.7, 1.0], "float32").reshape(4, 1, 1, 1)

    penalty = to_numpy(trainer.gradient_penalty_for(real_ab, fake_ab, l_norm, alpha))

    interpolates = alpha * real_ab + (1 - alpha) * fake_ab
    grads = gradient(lambda ab: trainer.discriminator(ops.concatenate([ops.convert_to_tensor(l_norm), ab], axis=-1)), interpolates)
    norms = np.sqrt(np.sum(grads.astype("float64") ** 2, axis=(1, 2, 3)) + 1e-12)
    np.testing.assert_allclose(penalty, np.mean((norms - 1.0) ** 2), rtol=1e-4)

    # The penalty is differentiable with respect to the critic's weights (second order).
    variables = trainer.discriminator.trainable_variables
    (value, _), grads = value_and_gradients(
        lambda: (trainer.gradient_penalty_for(real_ab, fake_ab, l_norm, alpha), None), variables
    )
    np.testing.assert_allclose(to_numpy(value), penalty, rtol=1e-5)
    kernels = [to_numpy(g) for g, v in zip(grads, variables) if v.path.endswith("kernel")]
    assert all(np.isfinite(k).all() for k in kernels)
    assert all(np.abs(k).max() > 0 for k in kernels)


# ------------------------------------------------------- saving and failures
def test_serialization_round_trips():
    for trainer in (
        GANTrainer(tiny_unet(), tiny_patchgan(), lambda_rec=10.0, real_label=1.0),
        WGANGPTrainer(tiny_chromagan(), tiny_patchgan(None), teacher=tiny_teacher(), class_target="teacher", n_critic=2),
    ):
        clone = run_serialization_test(trainer)
        assert type(clone.generator) is type(trainer.generator)


def test_save_and_resume_mid_training(photos_32, tmp_path):
    keras.utils.set_random_seed(6)
    trainer = GANTrainer(tiny_unet(), tiny_patchgan())
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam(2e-3))
    trainer.fit(photos_32, batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "trainer.keras"
    trainer.save(path)

    loaded = keras.saving.load_model(path)

    assert type(loaded) is GANTrainer
    assert len(loaded.weights) == len(trainer.weights)
    for a, b in zip(trainer.weights, loaded.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    for role in ("generator_optimizer", "discriminator_optimizer"):
        original, restored = getattr(trainer, role), getattr(loaded, role)
        assert float(restored.learning_rate) == pytest.approx(float(original.learning_rate))
        assert len(original.variables) == len(restored.variables) > 1
        for a, b in zip(original.variables, restored.variables):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert int(loaded.generator_optimizer.iterations) == 3

    before = snapshot(loaded.discriminator.trainable_variables)
    history = loaded.fit(photos_32, batch_size=2, epochs=1, verbose=0)
    assert_finite_logs(history, GAN_LOGS)
    assert int(loaded.generator_optimizer.iterations) == 6
    assert int(loaded.discriminator_optimizer.iterations) == 6
    assert all(changed(before, loaded.discriminator.trainable_variables))


def test_diverging_training_is_stopped(photos_32):
    keras.utils.set_random_seed(7)
    trainer = GANTrainer(tiny_unet(), tiny_patchgan())
    trainer.compile(generator_optimizer=adam(1e30), discriminator_optimizer=adam(1e30))
    guard = TerminateOnNonFinite()

    history = trainer.fit(photos_32, batch_size=1, epochs=3, verbose=0, callbacks=[guard])

    assert guard.diverged is not None and guard.diverged["key"] == "loss"
    assert trainer.stop_training
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert not np.isfinite(history.history["loss"][0])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(UserInputError, match="class_target"):
        GANTrainer(tiny_unet(), tiny_patchgan(), class_target="folders")
    with pytest.raises(UserInputError, match="teacher"):
        GANTrainer(tiny_unet(), tiny_patchgan(), class_target="teacher")
    with pytest.raises(UserInputError, match="n_critic"):
        WGANGPTrainer(tiny_unet(), tiny_patchgan(None), n_critic=0)
    trainer = GANTrainer(tiny_unet(), tiny_patchgan())
    with pytest.raises(UserInputError, match="generator_optimizer"):
        trainer.compile(optimizer="adam")


def test_one_vocabulary_with_the_old_names_deprecated(tmp_path):
    """Both trainers take (generator, discriminator); `critic=`, `.critic`, `generate` and the
    "critic" role still work, with a DeprecationWarning; old checkpoints' "critic" key loads."""
    import inspect

    from keras_colorize.models import list_models

    for cls in (GANTrainer, WGANGPTrainer):
        assert list(inspect.signature(cls).parameters)[:2] == ["generator", "discriminator"]
    critic = tiny_patchgan(None)
    with pytest.warns(DeprecationWarning, match="critic= is deprecated"):
        trainer = WGANGPTrainer(tiny_unet(), critic=critic)
    assert trainer.discriminator is critic
    with pytest.warns(DeprecationWarning, match="critic is deprecated"):
        assert trainer.critic is critic
    with pytest.raises(UserInputError, match="old name"):
        WGANGPTrainer(tiny_unet(), critic, critic=tiny_patchgan(None))
    l_norm = np.zeros((1, 32, 32, 1), "float32")
    with pytest.warns(DeprecationWarning, match="generator_outputs"):
        ab, logits = trainer.generate(l_norm, training=False)
    np.testing.assert_array_equal(to_numpy(ab), to_numpy(trainer.generator_outputs(l_norm, training=False)[0]))
    assert list_models(role="discriminator") == ["PatchGANDiscriminator"]
    with pytest.warns(DeprecationWarning, match="role 'critic' is deprecated"):
        assert list_models(role="critic") == ["PatchGANDiscriminator"]
    config = trainer.get_config()
    assert "discriminator" in config and "critic" not in config
    config["critic"] = config.pop("discriminator")  # as written before the rename
    restored = WGANGPTrainer.from_config(config)
    assert type(restored.discriminator).__name__ == "PatchGANDiscriminator"
