"""Pictures of a run: comparison grids (gray input, prediction, truth) and loss curves.

Grids are written with Pillow, curves with Matplotlib's object API on the Agg canvas
(no pyplot global state, no display needed).
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLUMN_LABELS = ("gray input", "prediction", "truth")
_PAD = 4
_BACKGROUND = 255


def _to_uint8(images):
    array = np.asarray(images)
    if array.dtype != np.uint8:
        array = np.nan_to_num(np.asarray(array, "float32"), nan=0.0, posinf=1.0, neginf=0.0)
        array = np.clip(np.rint(array * 255.0), 0, 255).astype("uint8")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected RGB images of shape (N, H, W, 3), got {array.shape}")
    return array


def comparison_grid(columns, labels=COLUMN_LABELS, min_tile=128):
    """Lay out images as a grid: one row per image, one column per version of it.

    Args:
        columns: sequence of arrays, one per column, each sRGB of shape (N, H, W, 3),
            float in [0, 1] or uint8 in [0, 255]; all with the same N, H and W.
        labels: sequence of str. A header label per column, or None for no header.
            Defaults to `("gray input", "prediction", "truth")`.
        min_tile: int. Small images are enlarged by an integer factor (nearest
            neighbour, so pixels stay visible) until a tile is at least this big.
            Defaults to 128.

    Returns:
        The grid as uint8 sRGB, shape (rows, cols, 3).
    """
    columns = [_to_uint8(c) for c in columns]
    count, height, width = columns[0].shape[:3]
    for column in columns[1:]:
        if column.shape[:3] != (count, height, width):
            raise ValueError(f"grid columns differ in shape: {column.shape} vs {columns[0].shape}")
    scale = max(1, math.ceil(min_tile / max(height, width)))
    tile_h, tile_w = height * scale, width * scale
    header = 0
    font = None
    if labels:
        font = ImageFont.load_default()
        header = 16 + _PAD
    grid_w = len(columns) * (tile_w + _PAD) + _PAD
    grid_h = header + count * (tile_h + _PAD) + _PAD
    canvas = Image.new("RGB", (grid_w, grid_h), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    for col, column in enumerate(columns):
        left = _PAD + col * (tile_w + _PAD)
        if labels:
            draw.text((left + 2, _PAD), str(labels[col]), fill=(0, 0, 0), font=font)
        for row in range(count):
            tile = Image.fromarray(column[row])
            if scale > 1:
                tile = tile.resize((tile_w, tile_h), Image.Resampling.NEAREST)
            canvas.paste(tile, (left, header + _PAD + row * (tile_h + _PAD)))
    return np.asarray(canvas)


def save_comparison_grid(path, truth, prediction, gray=None, labels=COLUMN_LABELS, format="PNG"):
    """Write a grid of rows (gray input, prediction, truth) as an image file.

    Args:
        path: str or Path. The output file.
        truth: sRGB in [0, 1] (float) or uint8, shape (N, H, W, 3). The original images.
        prediction: like `truth`. The colorized images.
        gray: like `truth`, or None. The gray input; None computes it from `truth`
            (L* kept, a* = b* = 0). Defaults to None.
        labels: column labels. Defaults to `("gray input", "prediction", "truth")`.
        format: str. Pillow format name. Defaults to "PNG".
    """
    if gray is None:
        from keras_colorize.colorizer import gray_baseline

        gray = gray_baseline(_to_uint8(truth).astype("float32") / 255.0)
    grid = comparison_grid([gray, prediction, truth], labels=labels)
    Image.fromarray(grid).save(path, format=format)


def plot_history(history, path, title=None, format="png", keys=("loss", "val_loss")):
    """Plot training and validation losses per epoch.

    Args:
        history: dict. Maps `"epoch"` (1-based epoch numbers) and log names such
            as `"loss"` and `"val_loss"` to lists of floats (NaN for a missing value).
        path: str or Path. The output image file.
        title: str or None. The figure title. Defaults to None.
        format: str. Matplotlib output format. Defaults to "png".
        keys: sequence of str. The logs to draw; `val_*` logs are dashed.
            Defaults to ("loss", "val_loss").
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    epochs = list(history.get("epoch", []))
    plotted = False
    for key in keys:
        style = "--s" if key.startswith("val_") else "-o"
        values = history.get(key)
        if values and epochs:
            axes.plot(epochs[: len(values)], values, style, markersize=3, label=key)
            plotted = True
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    if plotted:
        positive = [v for k in keys for v in history.get(k, []) if v == v and v > 0]
        if positive and max(positive) / max(min(positive), 1e-12) > 50:
            axes.set_yscale("log")
        axes.legend()
    axes.grid(True, alpha=0.3)
    if title:
        axes.set_title(title)
    if len(epochs) <= 20 and epochs:
        axes.set_xticks(epochs)
    figure.tight_layout()
    figure.savefig(path, format=format)
