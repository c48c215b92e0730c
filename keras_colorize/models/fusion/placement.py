"""Placing per-instance feature maps into their boxes on an image's feature grid.

Everything is written over `keras.ops` and vectorised over the batch and the
instances (no Python loop over either), so it runs inside compiled steps on every
backend and is differentiable with respect to the features.

Boxes follow the instance-aware data contract: `(y_min, x_min, y_max, x_max)` as
fractions of the image height and width in [0, 1], shape `(B, N, 4)`, with a mask
of shape `(B, N)` that is 1.0 for a real instance and 0.0 for padding.
"""

from keras import ops


def _grid_shape(grid_size):
    if isinstance(grid_size, int):
        return grid_size, grid_size
    height, width = grid_size
    return int(height), int(width)


def _snap_axis(start, end, cells):
    """Fractions [start, end] of one axis -> integer cell edges [first, last)."""
    first = ops.clip(ops.floor(start * cells + 0.5), 0, cells - 1)
    last = ops.minimum(ops.maximum(ops.floor(end * cells + 0.5), first + 1), cells)
    return ops.cast(first, "int32"), ops.cast(last, "int32")


def snap_boxes(boxes, grid_height, grid_width):
    """Snap normalized boxes to the cell edges of a grid.

    Each edge goes to the nearest cell boundary (halves round up); a box keeps at
    least one cell along each axis and stays inside the grid.

    Args:
        boxes: float tensor `(..., 4)`. Boxes as `(y_min, x_min, y_max, x_max)`
            fractions of the image height and width in [0, 1].
        grid_height: int. Rows of the grid.
        grid_width: int. Columns of the grid.

    Returns:
        int32 tensor `(..., 4)`: `(row_start, col_start, row_end, col_end)` with
        `0 <= start < end <= grid size` (end exclusive).

    Examples:
        >>> import numpy as np
        >>> from keras import ops
        >>> from keras_colorize.models.fusion import snap_boxes
        >>> boxes = np.array([[0.1, 0.0, 0.55, 1.0], [0.5, 0.5, 0.5, 0.5]], "float32")
        >>> ops.convert_to_numpy(snap_boxes(boxes, 4, 8)).tolist()
        [[0, 0, 2, 8], [2, 4, 3, 5]]
    """
    boxes = ops.convert_to_tensor(boxes, "float32")
    y_min, x_min, y_max, x_max = ops.unstack(boxes, 4, axis=-1)
    row_start, row_end = _snap_axis(y_min, y_max, grid_height)
    col_start, col_end = _snap_axis(x_min, x_max, grid_width)
    return ops.stack([row_start, col_start, row_end, col_end], axis=-1)


def _axis_inside(start, end, mask, cells):
    """(B, N, cells) float: 1 where a cell lies in [start, end) of a real instance."""
    index = ops.arange(cells, dtype="int32")
    inside = ops.logical_and(index >= start[..., None], index < end[..., None])
    return ops.cast(inside, "float32") * ops.cast(mask, "float32")[..., None]


def _axis_matrix(start, end, mask, cells, source):
    """(B, N, cells, source): bilinear (half-pixel centres) resize of `source`
    samples onto the cells [start, end), zero on the other cells."""
    start_f = ops.cast(start, "float32")[..., None]
    extent = ops.cast(end - start, "float32")[..., None]
    index = ops.cast(ops.arange(cells, dtype="int32"), "float32")
    # Where each output cell samples the source, clamped to the outer sample centres.
    position = (index - start_f + 0.5) * (float(source) / extent) - 0.5
    position = ops.clip(position, 0.0, float(source - 1))
    taps = ops.cast(ops.arange(source, dtype="int32"), "float32")
    weights = ops.relu(1.0 - ops.abs(position[..., None] - taps))
    return weights * _axis_inside(start, end, mask, cells)[..., None]


def interpolation_matrices(boxes, mask, grid_size, source_size):
    """Separable matrices that resize source maps into their boxes on a grid.

    For each (batch, instance) the row matrix `R` (grid rows x source rows) and
    the column matrix `C` (grid columns x source columns) give
    `R @ F @ C^T`: the source map `F` resized to the snapped box extent with
    bilinear, half-pixel-centre sampling (as
    `keras.ops.image.resize(..., interpolation="bilinear", antialias=False)`),
    placed at the box's rows and columns, zero elsewhere. Masked-out instances
    get zero matrices.

    Args:
        boxes: float tensor `(B, N, 4)`. `(y_min, x_min, y_max, x_max)` fractions
            of the image height and width in [0, 1].
        mask: float tensor `(B, N)`. 1.0 for a real instance, 0.0 for padding.
        grid_size: int or (int, int). Height and width of the target grid.
        source_size: int or (int, int). Height and width of the source maps.

    Returns:
        A tuple `(rows, columns)` of float32 tensors, shapes
        `(B, N, grid_height, source_height)` and `(B, N, grid_width, source_width)`.
    """
    grid_height, grid_width = _grid_shape(grid_size)
    source_height, source_width = _grid_shape(source_size)
    cells = snap_boxes(boxes, grid_height, grid_width)
    row_start, col_start, row_end, col_end = ops.unstack(cells, 4, axis=-1)
    rows = _axis_matrix(row_start, row_end, mask, grid_height, source_height)
    columns = _axis_matrix(col_start, col_end, mask, grid_width, source_width)
    return rows, columns


def place_in_boxes(features, boxes, mask, grid_size):
    """Resize each instance's feature map into its box on a zero canvas.

    Args:
        features: float tensor `(B, N, h', w', C)`. One feature map per instance
            (any values, e.g. network features or weight logits).
        boxes: float tensor `(B, N, 4)`. `(y_min, x_min, y_max, x_max)` fractions
            of the image height and width in [0, 1].
        mask: float tensor `(B, N)`. 1.0 for a real instance, 0.0 for padding.
        grid_size: int or (int, int). Height and width `(h, w)` of the canvas.

    Returns:
        Tensor `(B, N, h, w, C)` in the dtype of `features`: each map resized
        (bilinear, half-pixel centres, no antialiasing) to its snapped box and
        pasted there; zeros outside the box and for masked-out instances.

    Examples:
        >>> import numpy as np
        >>> from keras import ops
        >>> from keras_colorize.models.fusion import place_in_boxes
        >>> features = np.ones((1, 1, 2, 2, 1), "float32")
        >>> boxes = np.array([[[0.25, 0.0, 0.75, 0.5]]], "float32")
        >>> placed = place_in_boxes(features, boxes, np.ones((1, 1), "float32"), 4)
        >>> ops.convert_to_numpy(placed)[0, 0, :, :, 0].tolist()
        [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    shape = ops.shape(features)
    rows, columns = interpolation_matrices(boxes, mask, grid_size, (int(shape[2]), int(shape[3])))
    dtype = features.dtype if hasattr(features, "dtype") else "float32"
    rows, columns = ops.cast(rows, dtype), ops.cast(columns, dtype)
    resized_rows = ops.einsum("bnyi,bnijc->bnyjc", rows, features)
    return ops.einsum("bnxj,bnyjc->bnyxc", columns, resized_rows)


def box_masks(boxes, mask, grid_size):
    """Masks of the snapped boxes on a grid.

    Args:
        boxes: float tensor `(B, N, 4)`. `(y_min, x_min, y_max, x_max)` fractions
            of the image height and width in [0, 1].
        mask: float tensor `(B, N)`. 1.0 for a real instance, 0.0 for padding.
        grid_size: int or (int, int). Height and width `(h, w)` of the grid.

    Returns:
        float32 tensor `(B, N, h, w, 1)`: 1.0 inside the snapped box of a real
        instance, 0.0 elsewhere.
    """
    grid_height, grid_width = _grid_shape(grid_size)
    cells = snap_boxes(boxes, grid_height, grid_width)
    row_start, col_start, row_end, col_end = ops.unstack(cells, 4, axis=-1)
    rows = _axis_inside(row_start, row_end, mask, grid_height)
    columns = _axis_inside(col_start, col_end, ops.ones_like(ops.convert_to_tensor(mask, "float32")), grid_width)
    return (rows[..., :, None] * columns[..., None, :])[..., None]
