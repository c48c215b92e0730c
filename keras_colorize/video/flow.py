"""Optical flow between gray frames (OpenCV's DIS), warping, and the reliability of a flow.

A flow of shape (H, W, 2) holds, for each pixel x of one frame, the displacement
(dx, dy) in pixels to where the same point is in the other frame: frame_a(x) is
frame_b(x + flow(x)).
"""

import numpy as np

from keras_colorize.errors import UserInputError
from keras_colorize.video.dependencies import import_cv2

class FlowEstimator:
    """Dense optical flow between uint8 gray frames with OpenCV's DIS (Kroeger et al. 2016).

    Args:
        preset: str. "ultrafast", "fast" or "medium" (DIS presets: faster or more accurate).
            Defaults to "fast".

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.video.flow import FlowEstimator
        >>> gray = np.random.default_rng(0).integers(0, 255, (64, 96), dtype=np.uint8)
        >>> FlowEstimator()(gray, gray).shape
        (64, 96, 2)
    """

    def __init__(self, preset="fast"):
        cv2 = import_cv2()
        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        if preset not in presets:
            raise UserInputError(f"unknown flow preset {preset!r} (use one of {', '.join(presets)})")
        self._dis = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, gray_a, gray_b):
        """The flow from frame a to frame b: a(x) = b(x + flow(x)).

        Args:
            gray_a: uint8 gray frame a, shape (H, W).
            gray_b: uint8 gray frame b, same shape.

        Returns:
            float32 flow in pixels, shape (H, W, 2), (dx, dy).
        """
        return self._dis.calc(gray_a, gray_b, None)


def warp(image, flow):
    """Sample `image` at x + flow(x) (bilinear; points outside the frame take the nearest edge).

    Args:
        image: float32 or uint8 array of shape (H, W) or (H, W, C), C <= 4.
        flow: float32 (H, W, 2) in pixels (see `FlowEstimator`).

    Returns:
        The warped image, same shape and dtype as `image`.
    """
    cv2 = import_cv2()
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype="float32"), np.arange(height, dtype="float32"))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inside_frame(flow):
    """Where x + flow(x) falls inside the frame: bool (H, W)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype="float32"), np.arange(height, dtype="float32"))
    x, y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def forward_backward_error(flow_ab, flow_ba):
    """How far the flow back misses the start point, per pixel of frame a.

    Args:
        flow_ab: float32 (H, W, 2). Flow from frame a to frame b.
        flow_ba: float32 (H, W, 2). Flow from frame b to frame a.

    Returns:
        (error, magnitude): float32 (H, W) each: |w + w_back|^2 and |w|^2 + |w_back|^2,
        with w = flow_ab(x) and w_back = flow_ba(x + w), in squared pixels.
    """
    back = warp(flow_ba, flow_ab)
    error = np.sum((flow_ab + back) ** 2, axis=-1)
    magnitude = np.sum(flow_ab**2, axis=-1) + np.sum(back**2, axis=-1)
    return error, magnitude


def consistent_flow_mask(flow_ab, flow_ba, alpha=0.01, beta=0.5):
    """The pixels of frame a whose flow is confirmed by the flow back (not occluded).

    The forward-backward check of Sundaram et al. (ECCV 2010): a pixel is kept when
    |w + w_back|^2 < alpha (|w|^2 + |w_back|^2) + beta, with w = flow_ab(x) and w_back
    = flow_ba(x + w), and when x + w falls inside the frame.

    Args:
        flow_ab: float32 (H, W, 2). Flow from frame a to frame b.
        flow_ba: float32 (H, W, 2). Flow from frame b to frame a.
        alpha: float. Relative tolerance. Defaults to 0.01.
        beta: float. Absolute tolerance in squared pixels. Defaults to 0.5.

    Returns:
        bool (H, W): True where the flow is reliable.
    """
    error, magnitude = forward_backward_error(flow_ab, flow_ba)
    return (error < alpha * magnitude + beta) & inside_frame(flow_ab)


def warping_error(frames, flows, masks):
    """The warping error of Lai et al. (ECCV 2018): temporal inconsistency of a video.

    E_warp = mean over consecutive pairs (t, t+1) of
    sum_i M_t(i) ||V_t(i) - V_t+1(i + F_t(i))||^2 / sum_i M_t(i), with V in sRGB [0, 1]
    (the squared norm over the three channels), F_t the flow from frame t to t+1 and
    M_t its non-occluded pixels. Pairs with an empty mask (a scene cut) are left out.

    Args:
        frames: sequence of T uint8 sRGB frames (H, W, 3) (or float in [0, 1]).
        flows: sequence of T-1 float32 flows (H, W, 2), frame t to t+1.
        masks: sequence of T-1 bool (H, W): the pixels compared.

    Returns:
        float. The mean warping error (0 = perfectly consistent).
    """
    errors = []
    for index, (flow, mask) in enumerate(zip(flows, masks, strict=True)):
        if not mask.any():
            continue
        current, following = (_float_frame(frames[index + offset]) for offset in (0, 1))
        squared = np.sum((current - warp(following, flow)) ** 2, axis=-1)
        errors.append(float(np.sum(squared * mask) / np.sum(mask)))
    if not errors:
        raise ValueError("warping_error needs at least one frame pair with a non-empty mask")
    return float(np.mean(errors))


def _float_frame(frame):
    frame = np.asarray(frame)
    return frame.astype("float32") / 255.0 if frame.dtype == np.uint8 else frame.astype("float32")
