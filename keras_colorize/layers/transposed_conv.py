"""A transposed convolution that trains fast on every backend.

On XLA:CPU (the JAX backend), the gradient of `jax.lax.conv_transpose` is
pathologically slow: for a 4x4, stride-2 layer from 32x32x128 to 64x64x64 with a
batch of 8, one gradient takes about 20 s where the forward takes milliseconds. A
stride-2 transposed convolution is the interleave of four stride-1 convolutions, one
per output phase (even/odd row, even/odd column), each with a 2x2 slice of the kernel
(for a 4x4 kernel). On JAX the layer computes that split with XLA's convolutions
forward and, on CPU devices, takes its input gradient from XLA's stride-2
convolution (the transposed convolution's adjoint) and its kernel gradient as a
matrix product over patches (`im2col_kernel_gradient`). Measured on a 2-core CPU at
batch 8, forward and backward: 32x32x256 to 64x64x64 in 0.10 s, 64x64x128 to
128x128x64 in 0.33 s (with XLA's gradients of the split: 0.21 s and 0.43 s;
`conv_transpose`: about 20 s). TensorFlow's and PyTorch's native transposed
convolutions are faster than the split, so they keep them. On PyTorch the layer calls
`torch.nn.functional.conv_transpose2d` on the channels-last view of its input, without
the copies and the full-size-then-crop of Keras's PyTorch backend (see
`keras_colorize.layers.fast_paths`).
"""

import keras
from keras import layers, ops

from keras_colorize.layers.fast_paths import (
    im2col_kernel_gradient,
    on_xla_cpu,
    phase_split_conv_transpose,
    torch_kernel,
    with_gradients,
)
from keras_colorize.serialization import register


@register
class PhaseSplitConv2DTranspose(layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` computed as four stride-1 convolutions on JAX.

    The same layer as `Conv2DTranspose` (same arguments, weights, outputs and
    saved config keys): on the JAX backend, a 4x4, stride-2, "same", channels-last,
    undilated configuration runs as the interleave of four stride-1 convolutions
    (one per output phase), with faster gradients on CPU devices (see the
    module's documentation); on PyTorch the
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
            transpose = phase_split_conv_transpose
            if on_xla_cpu():
                transpose = with_gradients(transpose, _input_gradient, _kernel_gradient)
            outputs = transpose(inputs, ops.cast(self.kernel, inputs.dtype))
            if self.use_bias:
                outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


# The transposed convolution y = T(x, k) is the adjoint of the stride-2 "same"
# convolution c(g, k) = conv(g, k): <T(x, k), g> = <x, c(g, k)> for every x, g, k.
# So its input gradient is c(g, k) (XLA's convolution forward), and its kernel
# gradient is the kernel gradient of c(., k) at g with cotangent x (a matrix product).


def _input_gradient(output_gradient, x, kernel):
    return ops.conv(output_gradient, kernel, strides=2, padding="same")


def _kernel_gradient(output_gradient, x, kernel):
    padded = ops.pad(output_gradient, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return im2col_kernel_gradient(padded, x, kernel.shape, (2, 2))
