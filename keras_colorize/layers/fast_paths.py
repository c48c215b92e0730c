"""Convolution and batch normalization with faster backend paths, same weights and outputs.

Keras's PyTorch backend keeps activations channels-last (N, H, W, C) and, for every
convolution, copies them to channels-first, copies them again to PyTorch's
channels-last memory format and reads the kernel through a strided permute (copied
once more in the backward pass); batch normalization is composed of elementwise ops.
A channels-last (N, H, W, C) tensor *is* an (N, C, H, W) tensor in PyTorch's
channels-last memory format, so these layers hand it to PyTorch's fused kernels as a
view: `FastConv2D` calls `torch.nn.functional.conv2d` with the kernel rearranged by
one 2-D transpose, `FastBatchNormalization` calls `torch.nn.functional.batch_norm`.
Measured on a 2-core CPU (UNetV1 + PatchGAN, see docs/benchmarks.md), this takes the
PyTorch backend's training step from about 0.6x to 0.8x of plain PyTorch's, and the
generator's inference from 0.66x to 1.4x.

On JAX with XLA:CPU, `FastConv2D` computes "valid" convolutions (the PatchGAN's,
which pad with a layer of their own) as a matrix product over the extracted patches
(im2col): the WGAN-GP gradient penalty differentiates the critic's input gradient,
and XLA:CPU computes that second-order gradient of a convolution 10 to 50 times
slower than the same thing written with slices and a matrix product (3.5 s against
0.07 s for the critic's second layer at batch 8, 128x128). Strided "same"
convolutions (the U-Nets' encoders) keep XLA's convolution forward and take their
gradients elsewhere (`with_gradients`): the input gradient from the transposed
convolution (`phase_split_conv_transpose`, for the 4x4 stride-2 layers of even
size) and the kernel gradient as a matrix product over patches; with at most
`FEW_OUTPUT_POSITIONS` output positions they run as im2col throughout. At batch 8,
forward and backward, UNetV1's 128x128x64 layer takes 0.25 s instead of 0.28 s
with XLA's gradients, its 4x4x512 layer 0.006 s instead of 0.14 s.
On GPUs, XLA's convolutions are used throughout.

Every other configuration, dtype and backend uses Keras's own computation.
"""

import keras
from keras import layers, ops

from keras_colorize.serialization import register


# XLA:CPU's convolutions are slow with few output positions (a 2x2x512 input to 1x1x512
# at batch 8: 24 ms forward, against 1 ms as a matrix product over patches); at up to
# this many output positions, strided "same" convolutions on CPU run as im2col.
FEW_OUTPUT_POSITIONS = 64


def same_padding(size, kernel_size, stride, dilation=1):
    """TensorFlow's "same" padding of one spatial dimension: (before, after)."""
    output_size = -(-size // stride)
    total = max((output_size - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def torch_kernel(kernel):
    """A Keras (kh, kw, a, b) kernel as PyTorch's (b, a, kh, kw), channels-last in memory.

    One contiguous 2-D transpose (fast) instead of a 4-D permute; PyTorch's
    convolutions take the result without another copy, forward or backward.
    """
    height, width, a, b = kernel.shape
    return kernel.reshape(height * width * a, b).t().contiguous().reshape(b, height, width, a).permute(0, 3, 1, 2)


def _on_torch_channels_last(inputs, data_format):
    return keras.backend.backend() == "torch" and data_format == "channels_last" and len(inputs.shape) == 4


@register
class FastConv2D(layers.Conv2D):
    """`keras.layers.Conv2D` with copy-free PyTorch and fast-gradient JAX paths.

    The same layer as `Conv2D` (same arguments, weights, outputs within float
    rounding, and saved config keys). On PyTorch, channels-last, ungrouped
    convolutions run `torch.nn.functional.conv2d` on the channels-last view of
    the input. On JAX with CPU devices, undilated, ungrouped "valid"
    convolutions run as a matrix product over patches (`im2col_conv`), and
    strided "same" ones run XLA's convolution with faster gradients (see the
    module's documentation). The constructor takes the arguments of
    `keras.layers.Conv2D`.

    Examples:
        >>> from keras_colorize.layers import FastConv2D
        >>> layer = FastConv2D(8, 4, strides=2, padding="same")
        >>> tuple(layer.compute_output_shape((1, 16, 16, 3)))
        (1, 8, 8, 8)
    """

    def call(self, inputs):
        if _on_torch_channels_last(inputs, self.data_format) and self.groups == 1:
            outputs = self._torch_call(inputs)
        elif self._uses_im2col(inputs):
            kernel = ops.cast(self.kernel, inputs.dtype)
            if self.padding == "valid":
                outputs = im2col_conv(inputs, kernel, tuple(self.strides))
            else:
                outputs = self._strided_same_conv(inputs, kernel)
            if self.use_bias:
                outputs = ops.add(outputs, ops.cast(self.bias, outputs.dtype))
        else:
            return super().call(inputs)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def _lora_variables(self):
        """The variables of a LoRA-enabled layer, in checkpoint order: base kernel, bias, adapters."""
        bias = [self.bias] if self.use_bias else []
        return [self._kernel, *bias, self.lora_kernel_a, self.lora_kernel_b]

    def save_own_variables(self, store):
        """Keras's own layout; with LoRA enabled, the base kernel and the adapters apart.

        Keras merges LoRA adapters into the kernel when it saves a `Conv2D`; kept
        apart, a checkpoint resumes with the same frozen kernel and trained adapters,
        and a preset can leave out the kernels that still equal the pretrained ones.
        """
        if not (self.lora_enabled and self.built):
            return super().save_own_variables(store)
        for index, variable in enumerate(self._lora_variables()):
            store[str(index)] = variable

    def load_own_variables(self, store):
        """Load either layout: the adapters apart (see `save_own_variables`) or merged."""
        if not (self.lora_enabled and self.built and len(store.keys()) == len(self._lora_variables())):
            return super().load_own_variables(store)
        for index, variable in enumerate(self._lora_variables()):
            variable.assign(store[str(index)])

    def _strided_same_conv(self, inputs, kernel):
        """XLA's convolution forward, gradients from matrix products (see the module)."""
        strides = tuple(self.strides)
        padding = (
            same_padding(inputs.shape[1], self.kernel_size[0], strides[0]),
            same_padding(inputs.shape[2], self.kernel_size[1], strides[1]),
        )

        def pad(x):
            return ops.pad(x, ((0, 0), *padding, (0, 0)))

        output_positions = -(-inputs.shape[1] // strides[0]) * -(-inputs.shape[2] // strides[1])
        if output_positions <= FEW_OUTPUT_POSITIONS:
            return im2col_conv(pad(inputs), kernel, strides)

        def input_gradient(output_gradient, x, k):
            if tuple(self.kernel_size) == (4, 4) and strides == (2, 2) and padding == ((1, 1), (1, 1)):
                return phase_split_conv_transpose(output_gradient, k)  # the adjoint of this convolution
            import jax

            _, pullback = jax.vjp(lambda v: im2col_conv(pad(v), k, strides), x)
            return pullback(output_gradient)[0]

        def kernel_gradient(output_gradient, x, k):
            return im2col_kernel_gradient(pad(x), output_gradient, k.shape, strides)

        convolution = with_gradients(
            lambda x, k: ops.conv(x, k, strides=strides, padding="same"), input_gradient, kernel_gradient
        )
        return convolution(inputs, kernel)

    def _torch_call(self, inputs):
        import torch.nn.functional as F

        x = inputs.permute(0, 3, 1, 2)  # a view: NCHW in channels-last memory
        padding = 0
        if self.padding == "same":
            rows = same_padding(x.shape[2], self.kernel_size[0], self.strides[0], self.dilation_rate[0])
            cols = same_padding(x.shape[3], self.kernel_size[1], self.strides[1], self.dilation_rate[1])
            if rows[0] == rows[1] and cols[0] == cols[1]:
                padding = (rows[0], cols[0])
            else:
                x = F.pad(x, (*cols, *rows))
        kernel = torch_kernel(ops.convert_to_tensor(self.kernel))
        bias = ops.convert_to_tensor(self.bias) if self.use_bias else None
        outputs = F.conv2d(x, kernel, bias, tuple(self.strides), padding, tuple(self.dilation_rate))
        return outputs.permute(0, 2, 3, 1)

    def _uses_im2col(self, inputs):
        """JAX on CPU, ungrouped and undilated, "valid" or strided "same", known sizes."""
        if not (
            on_xla_cpu()
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and tuple(self.kernel_size) != (1, 1)
            and inputs.shape[1] is not None
            and inputs.shape[2] is not None
        ):
            return False
        return self.padding == "valid" or min(self.strides) > 1


def on_xla_cpu():
    """Whether Keras runs on JAX with CPU devices (where the im2col paths pay)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def with_gradients(forward, input_gradient, kernel_gradient):
    """`forward(x, kernel)` with the given vector-Jacobian product (JAX only).

    Args:
        forward: callable (x, kernel) -> outputs.
        input_gradient: callable (output_gradient, x, kernel) -> d<outputs, output_gradient>/dx.
        kernel_gradient: callable (output_gradient, x, kernel) -> d<outputs, output_gradient>/dkernel.

    Returns:
        A callable (x, kernel) -> outputs (a `jax.custom_vjp`; differentiable to any
        order in reverse mode when the two gradient functions are).
    """
    import jax

    @jax.custom_vjp
    def function(x, kernel):
        return forward(x, kernel)

    def function_forward(x, kernel):
        return forward(x, kernel), (x, kernel)

    def function_backward(residuals, output_gradient):
        return input_gradient(output_gradient, *residuals), kernel_gradient(output_gradient, *residuals)

    function.defvjp(function_forward, function_backward)
    return function


def extract_patches(inputs, kernel_size, strides=(1, 1)):
    """The "valid" patches of `inputs`: (N, H', W', kh * kw * C), in (row, column, channel) order.

    Args:
        inputs: tensor (N, H, W, C).
        kernel_size: (int, int), (kh, kw).
        strides: (int, int). Defaults to (1, 1).

    Returns:
        Tensor (N, (H - kh) // sh + 1, (W - kw) // sw + 1, kh * kw * C): the taps
        as shifted (and strided) slices of the input, concatenated on the last axis.
    """
    kernel_height, kernel_width = kernel_size
    row_stride, col_stride = strides
    rows = (inputs.shape[1] - kernel_height) // row_stride + 1
    cols = (inputs.shape[2] - kernel_width) // col_stride + 1
    taps = [
        inputs[:, i : i + row_stride * (rows - 1) + 1 : row_stride, j : j + col_stride * (cols - 1) + 1 : col_stride, :]
        for i in range(kernel_height)
        for j in range(kernel_width)
    ]
    return ops.concatenate(taps, axis=-1)


def im2col_conv(inputs, kernel, strides=(1, 1)):
    """`conv(inputs, kernel, strides, padding="valid")` as a matrix product over patches.

    Args:
        inputs: tensor (N, H, W, C).
        kernel: tensor (kh, kw, C, F), the Keras layout.
        strides: (int, int). Defaults to (1, 1).

    Returns:
        Tensor (N, (H - kh) // sh + 1, (W - kw) // sw + 1, F).
    """
    kernel_height, kernel_width, channels, filters = kernel.shape
    patches = extract_patches(inputs, (kernel_height, kernel_width), strides)
    return ops.matmul(patches, ops.reshape(kernel, (kernel_height * kernel_width * channels, filters)))


def im2col_kernel_gradient(inputs, output_gradient, kernel_shape, strides=(1, 1)):
    """The kernel gradient of `im2col_conv(inputs, kernel, strides)`: patches' transpose times gradient.

    Args:
        inputs: tensor (N, H, W, C), the convolution's (padded) input.
        output_gradient: tensor (N, H', W', F), the gradient of its outputs.
        kernel_shape: (kh, kw, C, F).
        strides: (int, int). Defaults to (1, 1).

    Returns:
        Tensor `kernel_shape`.
    """
    patches = extract_patches(inputs, kernel_shape[:2], strides)
    gradient = ops.tensordot(patches, output_gradient, axes=((0, 1, 2), (0, 1, 2)))
    return ops.reshape(gradient, kernel_shape)


def phase_split_conv_transpose(inputs, kernel):
    """`conv_transpose(inputs, kernel, strides=2, padding="same")` for a 4x4 kernel,
    as four stride-1 convolutions interleaved (channels last).

    The transposed convolution is the adjoint of the 4x4, stride-2, "same"
    convolution of an even-sized input with the same kernel read as (4, 4, C_out,
    C_in): its input gradient.

    Args:
        inputs: tensor (N, H, W, C_in).
        kernel: tensor (4, 4, C_out, C_in), the Keras transposed-convolution layout.

    Returns:
        Tensor (N, 2H, 2W, C_out).
    """
    flipped = ops.flip(ops.flip(kernel, 0), 1)
    rows = []
    for row_phase in (0, 1):
        phases = []
        for col_phase in (0, 1):
            sub_kernel = ops.transpose(flipped[row_phase::2, col_phase::2], (0, 1, 3, 2))
            padded = ops.pad(inputs, ((0, 0), (1 - row_phase, row_phase), (1 - col_phase, col_phase), (0, 0)))
            phases.append(ops.conv(padded, sub_kernel, strides=1, padding="valid"))
        rows.append(ops.stack(phases, axis=3))
    interleaved = ops.stack(rows, axis=2)  # (N, H, 2, W, 2, C_out)
    shape = ops.shape(inputs)
    return ops.reshape(interleaved, (shape[0], 2 * shape[1], 2 * shape[2], kernel.shape[2]))


@register
class FastBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with PyTorch's fused kernel on the PyTorch backend.

    The same layer as `BatchNormalization` (same arguments, weights, moving
    statistics and outputs within float rounding). On PyTorch, float32 4-D
    channels-last inputs without a mask run `torch.nn.functional.batch_norm` on
    the channels-last view (batch statistics with the biased variance, as Keras);
    everything else runs Keras's computation. The constructor takes the arguments
    of `keras.layers.BatchNormalization`.

    Examples:
        >>> from keras_colorize.layers import FastBatchNormalization
        >>> layer = FastBatchNormalization()
        >>> tuple(layer.compute_output_shape((2, 8, 8, 3)))
        (2, 8, 8, 3)
    """

    def call(self, inputs, training=None, mask=None):
        if not (
            _on_torch_channels_last(inputs, "channels_last")
            and self.axis in (3, -1)
            and mask is None
            and not self.renorm
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
        ):
            return super().call(inputs, training=training, mask=mask)
        import torch
        import torch.nn.functional as F

        x = inputs.permute(0, 3, 1, 2)  # a view: NCHW in channels-last memory
        gamma = ops.convert_to_tensor(self.gamma) if self.scale else None
        beta = ops.convert_to_tensor(self.beta) if self.center else None
        if training and self.trainable:
            with torch.no_grad():
                variance, mean = torch.var_mean(inputs, dim=(0, 1, 2), unbiased=False)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            outputs = F.batch_norm(x, None, None, gamma, beta, True, 0.0, self.epsilon)
        else:
            moving_mean = ops.convert_to_tensor(self.moving_mean)
            moving_variance = ops.convert_to_tensor(self.moving_variance)
            outputs = F.batch_norm(x, moving_mean, moving_variance, gamma, beta, False, 0.0, self.epsilon)
        return ops.cast(outputs.permute(0, 2, 3, 1), self.compute_dtype)
