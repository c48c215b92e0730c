"""A transposed convolution that trains fast on every backend.

On XLA:CPU (the JAX backend), the gradient of `jax.lax.conv_transpose` is
pathologically slow: for a 4x4, stride-2 layer from 32x32x128 to 64x64x64 with a
batch of 8, one gradient takes about 20 s where the forward takes milliseconds. A
stride-2 transposed convolution is the interleave of four stride-1 convolutions, one
per output phase (even/odd row, even/odd column), each with a 2x2 slice of the kernel
(for a 4x4 kernel); stride-1 convolutions and their gradients are fast everywhere.
Measured on a 2-core CPU, the gradient of that layer takes 0.39 s this way on JAX
(58x faster), while TensorFlow's and PyTorch's native transposed convolutions stay
faster than the split, so they keep them. On PyTorch the layer calls
`torch.nn.functional.conv_transpose2d` on the channels-last view of its input, without
the copies and the full-size-then-crop of Keras's PyTorch backend (see
`keras_colorize.layers.fast_paths`).
"""

import keras
from keras import layers, ops

from keras_colorize.layers.fast_paths import torch_kernel
from keras_colorize.serialization import register


def phase_split_conv_transpose(inputs, kernel):
    """`conv_transpose(inputs, kernel, strides=2, padding="same")` for a 4x4 kernel,
    as four stride-1 convolutions interleaved (channels last).

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
class PhaseSplitConv2DTranspose(layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` computed as four stride-1 convolutions on JAX.

    The same layer as `Conv2DTranspose` (same arguments, weights, outputs and
    saved config keys): on the JAX backend, a 4x4, stride-2, "same", channels-last,
    undilated configuration runs as the interleave of four stride-1 convolutions
    (one per output phase), whose gradients XLA:CPU computes fast; on PyTorch the
    same configuration runs PyTorch's transposed convolution on the channels-last
    view of the input; any other configuration, and TensorFlow, use Keras's
    transposed convolution.
    Outputs agree with `Conv2DTranspose` to float rounding (about 1e-5 relative).
    The constructor takes the arguments of `keras.layers.Conv2DTranspose`.

    Examples:
        >>> from keras_colorize.layers import PhaseSplitConv2DTranspose
        >>> layer = PhaseSplitConv2DTranspose(8, 4, strides=2, padding="same")
        >>> tuple(layer.compute_output_shape((1, 16, 16, 3)))
        (1, 32, 32, 8)
    """

    def _is_4x4_stride_2_same(self):
        return (
            tuple(self.kernel_size) == (4, 4)
            and tuple(self.strides) == (2, 2)
            and self.padding == "same"
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and self.output_padding is None
        )

    def call(self, inputs):
        backend = keras.backend.backend()
        if backend not in ("jax", "torch") or not self._is_4x4_stride_2_same():
            return super().call(inputs)
        if backend == "torch":
            import torch.nn.functional as F

            bias = ops.convert_to_tensor(self.bias) if self.use_bias else None
            x = inputs.permute(0, 3, 1, 2)  # a view: NCHW in channels-last memory
            outputs = F.conv_transpose2d(x, torch_kernel(ops.convert_to_tensor(self.kernel)), bias, 2, 1)
            outputs = outputs.permute(0, 2, 3, 1)
        else:
            outputs = phase_split_conv_transpose(inputs, ops.cast(self.kernel, inputs.dtype))
            if self.use_bias:
                outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
