"""Plain-PyTorch reference of the zoo's UNetV1, PatchGAN and adversarial steps.

This is what a user of the original PyTorch pix2pix-style code would run: eager
PyTorch, float32, the default number of threads, the steps written the natural
way. The networks are layer for layer those of `keras_colorize.models.UNetV1`
and `PatchGANDiscriminator` (Keras 'same' padding reproduced exactly, BatchNorm
with Keras's epsilon 1e-3 and momentum 0.99, LeakyReLU 0.2, dropout, skip
concatenations, tanh head). The GAN step is pix2pix's `optimize_parameters`:
the generator runs once per batch; the discriminator steps on the detached fake
and the real pair (BCE, one-sided label smoothing 0.9); the generator's loss
(BCE + 100 x L1) reuses the same fake with the discriminator's gradients off;
Adam 2e-4 / beta_1 0.5 for both. The WGAN-GP step runs the generator once per
batch too (without autograd on critic-only batches): critic loss with gradient
penalty 10 at random interpolates, and on every 5th batch the generator step
(-0.1 x critic score + L2) through the same fake. The input is an sRGB batch;
L*a*b* is computed in PyTorch with the same formula as `keras_colorize.color`.

`load_keras_weights` copies a Keras model's weights into the reference, so
both give the same outputs (tests/test_benchmarks.py checks it).

Usage (one JSON line per measurement):

    python -m benchmarks.reference --trainer gan --image-size 128 --batch-size 8
    python -m benchmarks.reference --forward --image-size 256 --batch-size 8
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import emit, machine, parse_widths, peak_rss_mib, photo_batch, time_steps

# The constants of keras_colorize.color.lab (scikit-image's rgb2lab).
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
UNET_V1_ENCODER = (64, 64, 128, 256, 512, 512, 512, 512)
PATCHGAN_FILTERS = (64, 128, 256, 512)
KERAS_BN_EPSILON = 1e-3
KERAS_BN_MOMENTUM = 0.99


def rgb_to_model_inputs(images):
    """sRGB in [0, 1], (N, 3, H, W) -> (L/50 - 1 of shape (N, 1, H, W), ab/128 of shape (N, 2, H, W))."""
    power = ((images.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
    linear = torch.where(images > 0.04045, power, images / 12.92)
    r, g, b = linear[:, 0:1], linear[:, 1:2], linear[:, 2:3]
    f = []
    for row, white in zip(XYZ_FROM_RGB, D65_WHITE):
        t = (row[0] * r + row[1] * g + row[2] * b) / white
        f.append(torch.where(t > 0.008856, t.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * t + 16.0 / 116.0))
    fx, fy, fz = f
    lightness = 116.0 * fy - 16.0
    ab = torch.cat([500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
    return lightness / 50.0 - 1.0, ab / 128.0


def batch_norm(channels):
    """BatchNorm2d with Keras's defaults (epsilon 1e-3, momentum 0.99 = PyTorch 0.01)."""
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPSILON, momentum=1.0 - KERAS_BN_MOMENTUM)


class SameConv2d(nn.Conv2d):
    """Conv2d with Keras/TensorFlow 'same' padding: any extra row/column goes at the bottom/right."""

    def forward(self, x):
        pads = []
        for size, kernel, stride in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                                     (x.shape[-2], self.kernel_size[0], self.stride[0])):
            out = -(-size // stride)
            total = max((out - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class UNetV1Reference(nn.Module):
    """The zoo's UNetV1 in PyTorch: model-space L (N, 1, H, W) -> ab in [-1, 1] (N, 2, H, W).

    Args:
        encoder_filters: sequence of int. Defaults to the zoo's
            (64, 64, 128, 256, 512, 512, 512, 512).
        decoder_filters: sequence of int or None. Defaults to the encoder's
            filters but the last, reversed (the zoo's defaults for the default
            encoder).
        dropout_blocks: int. Leading decoder blocks with dropout. Defaults to 3.
        dropout_rate: float. Defaults to 0.5.
        kernel_size: int. Defaults to 4.
    """

    def __init__(self, encoder_filters=UNET_V1_ENCODER, decoder_filters=None, dropout_blocks=3, dropout_rate=0.5,
                 kernel_size=4):
        super().__init__()
        encoder_filters = tuple(encoder_filters)
        decoder_filters = tuple(decoder_filters or reversed(encoder_filters[:-1]))
        self.dropout_blocks, self.dropout_rate = dropout_blocks, dropout_rate
        self.layers = nn.ModuleDict()
        channels = 1
        for index, filters in enumerate(encoder_filters):
            name = f"encoder_{index + 1}"
            self.layers[f"{name}_conv"] = SameConv2d(channels, filters, kernel_size, stride=1 if index == 0 else 2)
            self.layers[f"{name}_bn"] = batch_norm(filters)
            channels = filters
        skips = list(reversed(encoder_filters[:-1]))
        for index, filters in enumerate(decoder_filters):
            name = f"decoder_{index + 1}"
            # Keras 'same' with stride 2 and an even kernel pads (k - 2) / 2 on each side.
            self.layers[f"{name}_deconv"] = nn.ConvTranspose2d(
                channels, filters, kernel_size, stride=2, padding=(kernel_size - 2) // 2
            )
            self.layers[f"{name}_bn"] = batch_norm(filters)
            channels = filters + skips[index]
        self.layers["ab_output"] = SameConv2d(channels, 2, kernel_size)
        self.encoder_depth, self.decoder_depth = len(encoder_filters), len(decoder_filters)

    def forward(self, l_norm):
        x, skips = l_norm, []
        for index in range(self.encoder_depth):
            name = f"encoder_{index + 1}"
            x = F.leaky_relu(self.layers[f"{name}_bn"](self.layers[f"{name}_conv"](x)), 0.2)
            skips.append(x)
        skips = list(reversed(skips[:-1]))
        for index in range(self.decoder_depth):
            name = f"decoder_{index + 1}"
            x = self.layers[f"{name}_bn"](self.layers[f"{name}_deconv"](x))
            if index < self.dropout_blocks and self.dropout_rate:
                x = F.dropout(x, self.dropout_rate, training=self.training)
            x = torch.cat([F.relu(x), skips[index]], dim=1)
        return torch.tanh(self.layers["ab_output"](x))


class PatchGANReference(nn.Module):
    """The zoo's PatchGANDiscriminator in PyTorch: L and ab (N, 3, H, W) -> logits (N, 1, H', W').

    Args:
        filters: sequence of int. Defaults to (64, 128, 256, 512).
        normalization: "batch" or None. Defaults to "batch".
        kernel_size: int. Defaults to 4.
        input_channels: int. Defaults to 3.
    """

    def __init__(self, filters=PATCHGAN_FILTERS, normalization="batch", kernel_size=4, input_channels=3):
        super().__init__()
        self.layers = nn.ModuleDict()
        self.block_names = []
        channels = input_channels
        for index, block_filters in enumerate(filters):
            name = f"block_{index + 1}"
            normalize = normalization == "batch" and index > 0
            stride = 2 if index < len(filters) - 1 else 1
            self.layers[f"{name}_conv"] = nn.Conv2d(
                channels, block_filters, kernel_size, stride=stride, padding=1, bias=not normalize
            )
            if normalize:
                self.layers[f"{name}_bn"] = batch_norm(block_filters)
            self.block_names.append(name)
            channels = block_filters
        self.layers["logits"] = nn.Conv2d(channels, 1, kernel_size, padding=1)

    def forward(self, pairs):
        x = pairs
        for name in self.block_names:
            x = self.layers[f"{name}_conv"](x)
            if f"{name}_bn" in self.layers:
                x = self.layers[f"{name}_bn"](x)
            x = F.leaky_relu(x, 0.2)
        return self.layers["logits"](x)


def count_parameters(module):
    """Parameters plus BatchNorm moving statistics: what Keras's `count_params()` counts."""
    total = sum(p.numel() for p in module.parameters())
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            total += sub.running_mean.numel() + sub.running_var.numel()
    return total


def load_keras_weights(reference, keras_model):
    """Copy a zoo model's weights into its reference, layer by layer (matched by name).

    Convolution kernels go from Keras's (kh, kw, in, out) to PyTorch's
    (out, in, kh, kw); transposed-convolution kernels from (kh, kw, out, in) to
    (in, out, kh, kw) (the same axis permutation); BatchNorm gamma, beta and
    moving mean/variance to weight, bias and running mean/variance.

    Args:
        reference: UNetV1Reference or PatchGANReference.
        keras_model: the matching zoo model (any Keras backend).

    Returns:
        The reference, for chaining.
    """
    from keras import ops

    def array(variable):
        return torch.from_numpy(np.ascontiguousarray(ops.convert_to_numpy(variable), dtype="float32"))

    with torch.no_grad():
        for name, module in reference.layers.items():
            layer = keras_model.get_layer(name)
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(array(layer.gamma))
                module.bias.copy_(array(layer.beta))
                module.running_mean.copy_(array(layer.moving_mean))
                module.running_var.copy_(array(layer.moving_variance))
            else:  # Conv2d and ConvTranspose2d: the same permutation
                module.weight.copy_(array(layer.kernel).permute(3, 2, 0, 1))
                if module.bias is not None:
                    module.bias.copy_(array(layer.bias))
    return reference


def _bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _adam(module):
    # Keras's Adam epsilon (1e-7); learning rate and beta_1 of the pix2pix setting.
    return torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-7)


def _set_requires_grad(module, flag):
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


class GANStep:
    """The pix2pix step: one generator forward; discriminator BCE (real label 0.9) on the
    detached fake and the real pair; then generator BCE + 100 x L1 through the same fake."""

    def __init__(self, generator, discriminator, lambda_adv=1.0, lambda_rec=100.0, real_label=0.9):
        self.generator, self.discriminator = generator.train(), discriminator.train()
        self.lambda_adv, self.lambda_rec, self.real_label = lambda_adv, lambda_rec, real_label
        self.g_optimizer, self.d_optimizer = _adam(generator), _adam(discriminator)

    def __call__(self, images):
        """One step on sRGB in [0, 1], float32, (N, 3, H, W); returns the losses as floats."""
        l_norm, ab_real = rgb_to_model_inputs(images)
        ab_fake = self.generator(l_norm)

        _set_requires_grad(self.discriminator, True)
        fake_logits = self.discriminator(torch.cat([l_norm, ab_fake.detach()], dim=1))
        real_logits = self.discriminator(torch.cat([l_norm, ab_real], dim=1))
        d_loss = 0.5 * (_bce(real_logits, self.real_label) + _bce(fake_logits, 0.0))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        _set_requires_grad(self.discriminator, False)
        g_adv = _bce(self.discriminator(torch.cat([l_norm, ab_fake], dim=1)), 1.0)
        g_rec = torch.mean(torch.abs(ab_real - ab_fake))
        g_total = self.lambda_adv * g_adv + self.lambda_rec * g_rec
        self.g_optimizer.zero_grad(set_to_none=True)
        g_total.backward()
        self.g_optimizer.step()
        return {"d_loss": d_loss.item(), "g_adv": g_adv.item(), "g_rec": g_rec.item()}


class WGANGPStep:
    """The WGAN-GP step: one generator forward per batch; the critic with gradient penalty on
    its detached output; on every `n_critic`-th batch the generator step through the same fake."""

    def __init__(self, generator, critic, lambda_adv=0.1, lambda_rec=1.0, gp_weight=10.0, n_critic=5):
        self.generator, self.critic = generator.train(), critic.train()
        self.lambda_adv, self.lambda_rec, self.gp_weight, self.n_critic = lambda_adv, lambda_rec, gp_weight, n_critic
        self.g_optimizer, self.c_optimizer = _adam(generator), _adam(critic)
        self.iterations = 0

    def __call__(self, images):
        """One step on sRGB in [0, 1], float32, (N, 3, H, W); returns the losses as floats."""
        self.iterations += 1
        generator_step = self.iterations % self.n_critic == 0
        l_norm, ab_real = rgb_to_model_inputs(images)
        with torch.set_grad_enabled(generator_step):
            ab_fake = self.generator(l_norm)
        fake = ab_fake.detach()

        _set_requires_grad(self.critic, True)
        alpha = torch.rand(images.shape[0], 1, 1, 1)
        real_scores = self.critic(torch.cat([l_norm, ab_real], dim=1))
        fake_scores = self.critic(torch.cat([l_norm, fake], dim=1))
        critic_loss = fake_scores.mean() - real_scores.mean()
        interpolates = (alpha * ab_real + (1.0 - alpha) * fake).requires_grad_(True)
        scores = self.critic(torch.cat([l_norm, interpolates], dim=1))
        (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        norms = torch.sqrt(grads.square().sum(dim=(1, 2, 3)) + 1e-12)
        gp = torch.mean((norms - 1.0) ** 2)
        total = critic_loss + self.gp_weight * gp
        self.c_optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.c_optimizer.step()
        logs = {"critic_loss": critic_loss.item(), "gp": gp.item()}
        if generator_step:
            _set_requires_grad(self.critic, False)
            g_adv = -self.critic(torch.cat([l_norm, ab_fake], dim=1)).mean()
            g_rec = torch.mean((ab_real - ab_fake) ** 2)
            g_total = self.lambda_adv * g_adv + self.lambda_rec * g_rec
            self.g_optimizer.zero_grad(set_to_none=True)
            g_total.backward()
            self.g_optimizer.step()
            logs.update(g_adv=g_adv.item(), g_rec=g_rec.item())
        return logs


def measure_train_step(trainer, image_size, batch_size, steps, warmup, encoder_filters=None):
    """Images/s of the reference step (eager PyTorch, float32); one record."""
    torch.manual_seed(0)
    generator = UNetV1Reference(encoder_filters or UNET_V1_ENCODER)
    if trainer == "gan":
        step = GANStep(generator, PatchGANReference())
    else:
        step = WGANGPStep(generator, PatchGANReference(normalization=None))
    images = torch.from_numpy(photo_batch(image_size, batch_size)).permute(0, 3, 1, 2).contiguous()
    first, step_s, logs = time_steps(lambda: step(images), steps, warmup)
    return {
        "benchmark": "train_step",
        "implementation": "reference-pytorch",
        "backend": "torch-eager",
        "trainer": trainer,
        "image_size": image_size,
        "batch_size": batch_size,
        "generator_parameters": count_parameters(generator),
        "steps": steps,
        "images_per_s": round(batch_size / step_s, 3),
        "step_s": round(step_s, 3),
        "compile_s": round(max(first - step_s, 0.0), 2),
        "first_step_s": round(first, 2),
        "peak_rss_mib": round(peak_rss_mib()),
        "threads": torch.get_num_threads(),
        "final_losses": {k: round(v, 4) for k, v in logs.items()},
        **machine(),
    }


def measure_forward(image_size, batch_size, steps, warmup, encoder_filters=None):
    """Images/s of the reference generator's inference forward (eval mode, no_grad); one record."""
    torch.manual_seed(0)
    generator = UNetV1Reference(encoder_filters or UNET_V1_ENCODER).eval()
    images = torch.from_numpy(photo_batch(image_size, batch_size)).permute(0, 3, 1, 2).contiguous()
    l_norm, _ = rgb_to_model_inputs(images)
    with torch.no_grad():
        first, step_s, _ = time_steps(lambda: generator(l_norm), steps, warmup)
    return {
        "benchmark": "generator_forward",
        "implementation": "reference-pytorch",
        "backend": "torch-eager",
        "image_size": image_size,
        "batch_size": batch_size,
        "steps": steps,
        "images_per_s": round(batch_size / step_s, 3),
        "step_s": round(step_s, 4),
        "compile_s": round(max(first - step_s, 0.0), 2),
        "peak_rss_mib": round(peak_rss_mib()),
        "threads": torch.get_num_threads(),
        **machine(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainer", choices=("gan", "wgan_gp"), default="gan")
    parser.add_argument("--forward", action="store_true", help="time the generator's inference forward instead")
    parser.add_argument("--image-size", "--size", dest="image_size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--generator-widths", default=None, help="encoder filters, e.g. 64,64,128,256,512,512,512,512")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    widths = parse_widths(args.generator_widths)
    if args.forward:
        emit(measure_forward(args.image_size, args.batch_size, args.steps, args.warmup, widths))
    else:
        emit(measure_train_step(args.trainer, args.image_size, args.batch_size, args.steps, args.warmup, widths))


if __name__ == "__main__":
    main()
