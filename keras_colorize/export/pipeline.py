"""The colorization pipeline of an exported model, written once over `keras.ops`.

It does what `Colorizer.colorize` does, as one traceable function whose image size is
known only when it runs: sRGB -> L*, L resized to the model size (bilinear,
antialiased), generator, ab resized (bilinear) to the photo's size, recombined with
the full-resolution L*, sRGB, rounded to uint8.

`keras.ops.image.resize` needs a size known when the graph is traced, so the resizes
here are written as products with small resampling matrices computed from the
runtime sizes. The weights are the ones of `keras.ops.image.resize` ("bilinear",
half-pixel centres; with `antialias=True` the triangle filter is widened by the
downscaling factor), and matrix products export to ONNX with dynamic sizes.
"""

import keras
from keras import ops

from keras_colorize.color import model_outputs_to_rgb, normalize_l, rgb_to_lightness


def resampling_matrix(in_size, out_size, antialias=False):
    """Weights of a 1-D bilinear resize, as an (out_size, in_size) matrix.

    Output sample `o` sits at `(o + 0.5) * in_size / out_size` in input
    coordinates; input pixel `i` (centre `i + 0.5`) gets the triangle weight
    `max(0, 1 - |i + 0.5 - centre| / support)`, normalised over the row. The
    support is 1, or the downscaling factor `in_size / out_size` when
    `antialias` and downscaling. Edge rows renormalise, which is the same as
    clamping the coordinates to the border pixels.

    Args:
        in_size: int or scalar int tensor. Input length.
        out_size: int or scalar int tensor. Output length.
        antialias: bool. Widen the filter when downscaling. Defaults to False.

    Returns:
        float32 tensor of shape (out_size, in_size) whose rows sum to 1.
    """
    in_length = ops.cast(in_size, "float32")
    scale = in_length / ops.cast(out_size, "float32")
    support = ops.maximum(scale, 1.0) if antialias else ops.ones_like(scale)
    centres = (ops.cast(ops.arange(out_size), "float32") + 0.5) * scale
    positions = ops.cast(ops.arange(in_size), "float32") + 0.5
    weights = ops.relu(1.0 - ops.abs(ops.expand_dims(positions, 0) - ops.expand_dims(centres, 1)) / support)
    return weights / ops.sum(weights, axis=1, keepdims=True)


def resize_images(images, size, antialias=False):
    """Bilinear resize of a batch to a size that may be known only at run time.

    Args:
        images: float32 tensor (N, H, W, C), channels last (any value range).
        size: (height, width), ints or scalar int tensors.
        antialias: bool. Antialias when downscaling. Defaults to False.

    Returns:
        float32 tensor (N, height, width, C).
    """
    shape = ops.shape(images)
    rows = resampling_matrix(shape[1], size[0], antialias)
    cols = resampling_matrix(shape[2], size[1], antialias)
    resized = ops.einsum("oh,nhwc->nowc", rows, images)
    return ops.einsum("pw,nowc->nopc", cols, resized)


def colorize_uint8(generator, image_size, images):
    """Colorize a batch of uint8 images of one size at full resolution.

    Args:
        generator: keras.Model. Model-space L in [-1, 1], (N, h, w, 1) -> ab in
            [-1, 1], (N, h, w, 2), or a dict with that as its "ab" entry.
        image_size: (int, int). The size (h, w) the generator sees.
        images: sRGB or gray in [0, 255], uint8, shape (N, H, W, C) with C = 1 or
            3 (a fourth channel, alpha, is ignored).

    Returns:
        A dict: "colorized", sRGB in [0, 255], uint8, shape (N, H, W, 3); and
        "class_logits", float32, (N, classes), when the generator returns them.
    """
    rgb = ops.cast(images[..., :3], "float32") / 255.0
    shape = ops.shape(rgb)
    batch, height, width = shape[0], shape[1], shape[2]
    rgb = ops.broadcast_to(rgb, (batch, height, width, 3))  # gray (C = 1) -> RGB
    l_norm = normalize_l(rgb_to_lightness(rgb, "channels_last"))
    l_small = resize_images(l_norm, image_size, antialias=True)
    outputs = generator(l_small, training=False)
    ab_small = outputs["ab"] if isinstance(outputs, dict) else outputs
    ab = resize_images(ops.cast(ab_small, "float32"), (height, width))
    colorized = model_outputs_to_rgb(l_norm, ab, "channels_last")
    colorized = ops.cast(ops.clip(ops.round(colorized * 255.0), 0.0, 255.0), "uint8")
    result = {"colorized": colorized}
    if isinstance(outputs, dict) and "class_logits" in outputs:
        result["class_logits"] = ops.cast(outputs["class_logits"], "float32")
    return result


class ColorizationPipeline(keras.Model):
    """A generator wrapped into uint8 photo in -> uint8 colorized photo out, at any size.

    This is the model that export writes out (its weights are the generator's); it is
    not meant for training.

    Args:
        generator: keras.Model. See `colorize_uint8`.
        image_size: int or (int, int). The size the generator sees.
        single_image: bool. Take and return one image, (H, W, C) -> (H, W, 3),
            instead of a batch, (N, H, W, C) -> (N, H, W, 3). Defaults to False.

    Inputs of `call`: sRGB or gray in [0, 255], uint8, shape (N, H, W, C) (or
    (H, W, C) with `single_image`), C = 1 or 3.
    Outputs of `call`: a dict, see `colorize_uint8` (without the batch axis with
    `single_image`).
    """

    def __init__(self, generator, image_size, single_image=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.generator = generator
        self.image_size = tuple(int(s) for s in image_size)
        self.single_image = bool(single_image)
        self.built = True

    def call(self, images):
        """Colorize uint8 sRGB images at full resolution.

        Args:
            images: uint8 sRGB (or gray with 1 channel), shape (H, W, C) with
                `single_image`, else (N, H, W, C).

        Returns:
            dict: "colorized", uint8 sRGB of shape (..., H, W, 3), and
            "class_logits" (float32) for generators with a classification branch.
        """
        if self.single_image:
            outputs = colorize_uint8(self.generator, self.image_size, ops.expand_dims(images, 0))
            return {name: value[0] for name, value in outputs.items()}
        return colorize_uint8(self.generator, self.image_size, images)
