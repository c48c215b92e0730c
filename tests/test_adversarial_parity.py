"""Adversarial training steps against an independent plain-PyTorch implementation.

From identical weights and the same batches, one and two `fit()` steps of
`GANTrainer` (with and without the class term) and of `WGANGPTrainer` (critic
steps, a generator step, the gradient penalty) must leave both networks (their
BatchNorm statistics included) and both Adam optimizers' moments where a plain
PyTorch step written from the papers leaves them:

- pix2pix (Isola et al. 2017, and its `pix2pix_model.py`): the generator runs
  once; the discriminator scores the detached fake, then the real pair, and
  steps on the mean of the two binary cross-entropies (real target
  `real_label`); the generator's loss is computed with the updated
  discriminator on the same fake: `lambda_adv * BCE(D(L, fake), 1) +
  lambda_rec * L1 + lambda_class * CE(logits, labels)`.
- WGAN-GP (Gulrajani et al. 2017, Algorithm 1): the critic steps on
  `mean(C(fake)) - mean(C(real)) + gp_weight * mean((||grad_ab C(L, ab_hat)|| - 1)^2)`
  at `ab_hat = alpha * real + (1 - alpha) * fake`; the generator steps on every
  `n_critic`-th batch on `-lambda_adv * mean(C(L, fake)) + lambda_rec * L2`.

The reference does not call keras-colorize: L*a*b* comes from scikit-image, the
layers are `torch.nn.functional` ops, the optimizer is `torch.optim.Adam`. Only
the interpolation weights alpha are drawn by Keras (the trainer's seeded
generator) and handed to the reference.

Tolerance: every value is float32 on both sides and the step adds a handful of
rounding differences of relative size ~1e-7 per operation (different
convolution algorithms and summation orders); Adam divides the first moment by
the root of the second, so a weight moves by about the learning rate (2e-4)
times a ratio that carries those relative errors. After two steps the weights
agree to 1e-5 relative (2e-6 absolute, 1 % of one step) and the moments to
1e-4 relative, with an absolute floor of 1e-4 times the largest moment of the
same variable: an entry of a gradient that is a sum of cancelling terms carries
the rounding of those terms, not of its own (small) size.
"""

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab

from keras_colorize.training import GANTrainer, WGANGPTrainer
from tests.test_case import to_numpy

SIZE = 16
BATCH = 4
CLASSES = 3
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
LEARNING_RATE = 2e-4
BETAS = (0.5, 0.999)
ADAM_EPSILON = 1e-7


# ----------------------------------------------------------------------------- the networks, in Keras


def keras_generator(class_branch):
    """Conv (no bias) - BatchNorm - ReLU - conv - tanh; with a class branch, pooled features -> logits."""
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="g_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="g_bn")(x)
    x = keras.layers.ReLU()(x)
    ab = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="g_ab")(x)
    if not class_branch:
        return keras.Model(inputs, ab, name="generator")
    logits = keras.layers.Dense(CLASSES, name="g_class")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, {"ab": ab, "class_logits": logits}, name="generator")


def keras_discriminator(batch_norm):
    """A two-layer PatchGAN: 4x4 stride-2 conv (- BatchNorm) - LeakyReLU(0.2) - 3x3 conv to logits."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 4, strides=2, padding="same", use_bias=not batch_norm, name="d_conv")(inputs)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="d_bn")(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    logits = keras.layers.Conv2D(1, 3, padding="same", name="d_out")(x)
    return keras.Model(inputs, logits, name="discriminator")


def keras_values(model):
    """{variable path: NumPy value} of every variable (trainable and BatchNorm statistics)."""
    return {variable.path: to_numpy(variable).copy() for variable in model.variables}


def adam_moments(optimizer, model):
    """{variable path: (first moment, second moment)} of a Keras Adam."""
    moments = {}
    for variable in model.trainable_variables:
        index = optimizer._get_variable_index(variable)
        moments[variable.path] = (to_numpy(optimizer._momentums[index]), to_numpy(optimizer._velocities[index]))
    return moments


# ----------------------------------------------------------------------------- the reference, in plain PyTorch


class Network:
    """Parameters and BatchNorm statistics by Keras path, in Keras's layout (kernels HWIO)."""

    def __init__(self, values, trainable):
        self.params = {p: torch.tensor(values[p], requires_grad=True) for p in trainable}
        self.stats = {p: torch.tensor(v) for p, v in values.items() if p not in trainable}

    def __getitem__(self, path):
        return self.params[path] if path in self.params else self.stats[path]

    def conv(self, x, name, stride=1, padding=1, bias=True):
        kernel = self[f"{name}/kernel"].permute(3, 2, 0, 1)
        return F.conv2d(x, kernel, self[f"{name}/bias"] if bias else None, stride=stride, padding=padding)

    def batch_norm(self, x, name):
        """Training-mode BatchNorm: batch statistics (biased variance), moving averages updated."""
        mean = x.mean(dim=(0, 2, 3))
        variance = x.var(dim=(0, 2, 3), unbiased=False)
        for stat, value in (("moving_mean", mean), ("moving_variance", variance)):
            path = f"{name}/{stat}"
            self.stats[path] = BN_MOMENTUM * self.stats[path] + (1 - BN_MOMENTUM) * value.detach()
        normalized = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(variance.view(1, -1, 1, 1) + BN_EPSILON)
        return normalized * self[f"{name}/gamma"].view(1, -1, 1, 1) + self[f"{name}/beta"].view(1, -1, 1, 1)


def torch_generator(net, l_norm, class_branch):
    x = F.relu(net.batch_norm(net.conv(l_norm, "g_conv", bias=False), "g_bn"))
    ab = torch.tanh(net.conv(x, "g_ab"))
    logits = x.mean(dim=(2, 3)) @ net["g_class/kernel"] + net["g_class/bias"] if class_branch else None
    return ab, logits


def torch_discriminator(net, pairs, batch_norm):
    x = net.conv(pairs, "d_conv", stride=2, padding=1, bias=not batch_norm)
    if batch_norm:
        x = net.batch_norm(x, "d_bn")
    return net.conv(F.leaky_relu(x, 0.2), "d_out")


def lab_inputs(images):
    """Model-space L (L*/50 - 1) and ab ((a*, b*)/128), NCHW float32, from scikit-image's sRGB -> L*a*b*."""
    lab = rgb2lab(images.astype("float64")).astype("float32")
    lab = torch.from_numpy(np.transpose(lab, (0, 3, 1, 2)).copy())
    return lab[:, :1] / 50.0 - 1.0, lab[:, 1:] / 128.0


def adam_step(optimizer):
    """`torch.optim.Adam.step` with Keras's epsilon: Keras divides by `sqrt(v) + epsilon` where
    PyTorch divides by `sqrt(v / (1 - beta_2^t)) + eps`, the same for `eps = epsilon / sqrt(1 - beta_2^t)`."""
    step = 1 + max((int(s["step"].item()) for s in optimizer.state.values()), default=0)
    for group in optimizer.param_groups:
        group["eps"] = ADAM_EPSILON / np.sqrt(1.0 - BETAS[1] ** step)
    optimizer.step()


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def reference_gan_steps(batches, labels, values_g, values_d, class_branch, real_label, lambda_adv, lambda_rec, lambda_class):
    generator = Network(values_g, [p for p in values_g if "moving" not in p])
    discriminator = Network(values_d, [p for p in values_d if "moving" not in p])
    g_params, d_params = list(generator.params.values()), list(discriminator.params.values())
    optimizer_g = torch.optim.Adam(g_params, lr=LEARNING_RATE, betas=BETAS, eps=ADAM_EPSILON)
    optimizer_d = torch.optim.Adam(d_params, lr=LEARNING_RATE, betas=BETAS, eps=ADAM_EPSILON)
    for images, batch_labels in zip(batches, labels):
        l_norm, ab_real = lab_inputs(images)
        fake, logits = torch_generator(generator, l_norm, class_branch)  # once per batch
        # the discriminator: the detached fake, then the real pair
        fake_logits = torch_discriminator(discriminator, torch.cat([l_norm, fake.detach()], 1), True)
        real_logits = torch_discriminator(discriminator, torch.cat([l_norm, ab_real], 1), True)
        d_loss = 0.5 * (bce(real_logits, real_label) + bce(fake_logits, 0.0))
        optimizer_d.zero_grad()
        d_loss.backward()
        adam_step(optimizer_d)
        # the generator, through the same forward, against the updated discriminator
        fake_logits = torch_discriminator(discriminator, torch.cat([l_norm, fake], 1), True)
        g_loss = lambda_adv * bce(fake_logits, 1.0) + lambda_rec * (fake - ab_real).abs().mean()
        if class_branch:
            g_loss = g_loss + lambda_class * F.cross_entropy(logits, torch.from_numpy(batch_labels).long())
        optimizer_g.zero_grad()
        g_loss.backward(inputs=g_params)
        adam_step(optimizer_g)
    return (generator, optimizer_g), (discriminator, optimizer_d)


def reference_wgan_gp_steps(batches, alphas, values_g, values_d, n_critic, gp_weight, lambda_adv, lambda_rec):
    generator = Network(values_g, [p for p in values_g if "moving" not in p])
    critic = Network(values_d, list(values_d))
    g_params, c_params = list(generator.params.values()), list(critic.params.values())
    optimizer_g = torch.optim.Adam(g_params, lr=LEARNING_RATE, betas=BETAS, eps=ADAM_EPSILON)
    optimizer_c = torch.optim.Adam(c_params, lr=LEARNING_RATE, betas=BETAS, eps=ADAM_EPSILON)
    for batch, (images, alpha) in enumerate(zip(batches, alphas), start=1):
        l_norm, ab_real = lab_inputs(images)
        fake, _ = torch_generator(generator, l_norm, False)  # once per batch
        real_scores = torch_discriminator(critic, torch.cat([l_norm, ab_real], 1), False)
        fake_scores = torch_discriminator(critic, torch.cat([l_norm, fake.detach()], 1), False)
        alpha = torch.from_numpy(alpha).view(-1, 1, 1, 1)
        interpolates = (alpha * ab_real + (1 - alpha) * fake.detach()).requires_grad_(True)
        scores = torch_discriminator(critic, torch.cat([l_norm, interpolates], 1), False)
        (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        penalty = ((grads.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
        critic_loss = fake_scores.mean() - real_scores.mean() + gp_weight * penalty
        optimizer_c.zero_grad()
        critic_loss.backward(inputs=c_params)
        adam_step(optimizer_c)
        if batch % n_critic == 0:
            fake_scores = torch_discriminator(critic, torch.cat([l_norm, fake], 1), False)
            g_loss = -lambda_adv * fake_scores.mean() + lambda_rec * ((fake - ab_real) ** 2).mean()
            optimizer_g.zero_grad()
            g_loss.backward(inputs=g_params)
            adam_step(optimizer_g)
    return (generator, optimizer_g), (critic, optimizer_c)


# ----------------------------------------------------------------------------- comparison


def assert_network_equal(model, keras_optimizer, reference, steps_taken):
    network, optimizer = reference
    got = keras_values(model)
    for path, value in got.items():
        expected = network[path].detach().numpy()
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=2e-6, err_msg=path)
    assert int(keras_optimizer.iterations) == steps_taken
    if not steps_taken:
        assert not optimizer.state
        return
    moments = adam_moments(keras_optimizer, model)
    for path, parameter in network.params.items():
        state = optimizer.state[parameter]
        assert int(state["step"].item()) == steps_taken, path
        first, second = moments[path]
        for name, value, expected in (("m", first, state["exp_avg"]), ("v", second, state["exp_avg_sq"])):
            expected = expected.numpy()
            floor = 1e-4 * np.abs(expected).max()
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=floor, err_msg=f"{path} {name}")


def batches_of(photos, steps):
    """`steps` batches of BATCH real photos at SIZE x SIZE (sRGB float32 in [0, 1]): the photos, then
    the same mirrored."""
    photos = np.concatenate([photos, photos[:, :, ::-1]])
    images = keras.ops.image.resize(photos[: BATCH * steps], (SIZE, SIZE), antialias=True)
    images = np.clip(to_numpy(images), 0.0, 1.0).astype("float32")
    return images, [images[i * BATCH : (i + 1) * BATCH] for i in range(steps)]


def adam():
    """The trainers' Adam (`keras_colorize.training.optimizers.Adam`)."""
    from keras_colorize.training.optimizers import Adam

    return Adam(LEARNING_RATE, beta_1=BETAS[0], beta_2=BETAS[1], epsilon=ADAM_EPSILON)


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("class_branch", [False, True], ids=["gan", "gan_class"])
def test_gan_trainer_steps_equal_plain_pytorch(photos_64, class_branch, steps):
    keras.utils.set_random_seed(1)
    images, batches = batches_of(photos_64, steps)
    labels = np.arange(BATCH * steps) % CLASSES
    generator, discriminator = keras_generator(class_branch), keras_discriminator(batch_norm=True)
    settings = {"real_label": 0.9, "lambda_adv": 1.0, "lambda_rec": 100.0, "lambda_class": 0.5 if class_branch else 0.0}
    trainer = GANTrainer(generator, discriminator, reconstruction="l1", **settings)
    assert trainer.uses_class_branch is class_branch
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    values_g, values_d = keras_values(generator), keras_values(discriminator)

    x = (images, labels) if class_branch else (images,)
    trainer.fit(*x, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    label_batches = [labels[i * BATCH : (i + 1) * BATCH] for i in range(steps)]
    reference_g, reference_d = reference_gan_steps(batches, label_batches, values_g, values_d, class_branch, **settings)
    assert_network_equal(generator, trainer.generator_optimizer, reference_g, steps)
    assert_network_equal(discriminator, trainer.discriminator_optimizer, reference_d, steps)


@pytest.mark.parametrize("steps", [1, 2])
def test_wgan_gp_trainer_steps_equal_plain_pytorch(photos_64, steps):
    keras.utils.set_random_seed(2)
    images, batches = batches_of(photos_64, steps)
    generator, critic = keras_generator(False), keras_discriminator(batch_norm=False)
    trainer = WGANGPTrainer(
        generator, critic, lambda_adv=0.1, lambda_rec=1.0, reconstruction="l2", gp_weight=10.0, n_critic=2, seed=7
    )
    trainer.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    values_g, values_d = keras_values(generator), keras_values(critic)
    draws = keras.random.SeedGenerator(7)  # the trainer's generator, replayed: alpha for each batch
    alphas = [to_numpy(keras.random.uniform((BATCH, 1, 1, 1), seed=draws)).reshape(-1) for _ in range(steps)]

    trainer.fit(images, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    reference_g, reference_c = reference_wgan_gp_steps(
        batches, alphas, values_g, values_d, n_critic=2, gp_weight=10.0, lambda_adv=0.1, lambda_rec=1.0
    )
    assert_network_equal(critic, trainer.discriminator_optimizer, reference_c, steps)
    assert_network_equal(generator, trainer.generator_optimizer, reference_g, steps // 2)
