"""Temporal stabilisation of predicted chroma: less colour flicker, no retraining.

A colorizer that sees each frame alone changes its colours from frame to frame (flicker,
hue jumps). `ChromaStabilizer` carries the colour of the previous output along the motion:
it computes optical flow between consecutive gray frames, warps the previous stabilised
a*b* to the current frame and blends it with the new prediction where the flow is
reliable (forward-backward consistent and the warped gray matches, `CARRY_MOTION`). Where
it is not (occlusions, new content, frame edges) the new prediction is kept. At a scene
cut (gray histograms far apart, or too little motion passing the strict check
`STRICT_MOTION`) it starts afresh, so no colour crosses a cut. The result is an
exponential moving average of each point's colour along its trajectory, with weight
`strength` on the past.

Limits: colour that is wrong stays wrong for longer; fast motion, motion blur and
large textureless areas give less reliable flow, so less stabilisation; a slow fade or
dissolve is not a cut, so colour carries through it.
"""

import numpy as np

from keras_colorize.errors import UserInputError
from keras_colorize.video.dependencies import import_cv2
from keras_colorize.video.flow import FlowEstimator, forward_backward_error, inside_frame, warp

# Defaults of the stabiliser (also the `colorize` command's).
DEFAULT_STRENGTH = 0.8
# Two checks of the motion between frames, on the flow's forward-backward error
# (|w + w_back|^2 < alpha (|w|^2 + |w_back|^2) + beta, see `consistent_flow_mask`) and on
# the gray difference (0-255) between the frame and the previous one warped along the flow.
# The strict check (Sundaram et al.'s tolerances) tells whether two frames show the same
# scene (scene cuts); the loose one tells where colour is carried: a*b* are smooth, so a
# few pixels of misregistration cost nothing, while a missed point keeps its flicker.
STRICT_MOTION = {"alpha": 0.01, "beta": 0.5, "gray_tolerance": 16}
CARRY_MOTION = {"alpha": 0.5, "beta": 20.0, "gray_tolerance": 24}
# Bhattacharyya distance between gray histograms above which two frames are different shots.
CUT_HISTOGRAM_DISTANCE = 0.5
# Fraction of pixels passing STRICT_MOTION below which two frames are different shots.
CUT_MIN_RELIABLE = 0.2
# Longest side of the frames the flow is computed on (larger frames are downscaled).
FLOW_MAX_SIDE = 640


def check_strength(strength):
    """A valid stabilisation strength as float, else a one-line error."""
    strength = float(strength)
    if not 0.0 <= strength < 1.0:
        raise UserInputError(f"stabilisation strength must be in [0, 1), got {strength}")
    return strength


def stabilizer_for(stabilize, strength=DEFAULT_STRENGTH):
    """The stabiliser the options ask for: a `ChromaStabilizer`, or None when off or at strength 0."""
    return ChromaStabilizer(strength) if stabilize and strength > 0 else None


class ChromaStabilizer:
    """Stabilises a*b* over the frames of a video, one frame at a time (stateful).

    Args:
        strength: float in [0, 1). Weight of the motion-compensated previous colour
            where the flow is reliable; 0 turns stabilisation off. Defaults to 0.8.
        cut_histogram_distance: float in [0, 1]. Bhattacharyya distance of the 64-bin
            gray histograms of two frames above which a scene cut is declared.
            Defaults to 0.5.
        cut_min_reliable: float in [0, 1]. Fraction of pixels whose motion passes
            `STRICT_MOTION` below which a scene cut is declared. Defaults to 0.2.
        flow_preset: str. DIS preset ("ultrafast", "fast", "medium"). Defaults to "fast".

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.video import ChromaStabilizer
        >>> stabilizer = ChromaStabilizer(strength=0.8)
        >>> gray = np.random.default_rng(0).integers(0, 255, (64, 96), dtype=np.uint8)
        >>> first = stabilizer(gray, np.full((64, 96, 2), 20.0, "float32"))
        >>> second = stabilizer(gray, np.full((64, 96, 2), 30.0, "float32"))
        >>> round(float(second[32, 48, 0]), 1)  # 0.8 x 20 + 0.2 x 30 on a still frame
        22.0
    """

    def __init__(
        self,
        strength=DEFAULT_STRENGTH,
        cut_histogram_distance=CUT_HISTOGRAM_DISTANCE,
        cut_min_reliable=CUT_MIN_RELIABLE,
        flow_preset="fast",
    ):
        self.strength = check_strength(strength)
        self.cut_histogram_distance = float(cut_histogram_distance)
        self.cut_min_reliable = float(cut_min_reliable)
        self._flow = FlowEstimator(flow_preset)
        self.cuts = 0
        self.reset()

    def reset(self):
        """Forget the previous frame (the next frame starts a new shot)."""
        self._previous = None

    def __call__(self, gray, ab):
        """Stabilise the a*b* of the next frame.

        Frames with a side longer than `FLOW_MAX_SIDE` are stabilised on a downscaled
        copy; the change is upsampled and added to the full-size a*b*, so pixels where
        nothing changes keep the prediction exactly.

        Args:
            gray: uint8 gray frame (H, W), the frame's lightness (any monotone gray).
            ab: float32 a*b* prediction of the frame (H, W, 2), CIE units (about -128..127).

        Returns:
            float32 stabilised a*b*, shape (H, W, 2). The prediction itself on the first
            frame of a shot.
        """
        cv2 = import_cv2()
        ab = np.asarray(ab, "float32")
        height, width = gray.shape
        scale = FLOW_MAX_SIDE / max(height, width)
        if scale >= 1.0:
            return self._stabilise(gray, ab)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_ab = cv2.resize(ab, size, interpolation=cv2.INTER_AREA)
        change = self._stabilise(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), small_ab) - small_ab
        if not change.any():
            return ab
        return ab + cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR)

    def _stabilise(self, gray, ab):
        histogram = self._histogram(gray)
        previous, self._previous = self._previous, None
        if previous is None or self.strength == 0.0:
            self._previous = (gray, ab, histogram)
            return ab
        previous_gray, previous_ab, previous_histogram = previous
        cv2 = import_cv2()
        if cv2.compareHist(previous_histogram, histogram, cv2.HISTCMP_BHATTACHARYYA) > self.cut_histogram_distance:
            return self._cut(gray, ab, histogram)
        backward = self._flow(gray, previous_gray)  # current pixel -> where it was in the previous frame
        forward = self._flow(previous_gray, gray)
        error, magnitude = forward_backward_error(backward, forward)
        difference = np.abs(warp(previous_gray, backward).astype("int16") - gray)
        in_view = inside_frame(backward)

        def trusted(check):
            return (error < check["alpha"] * magnitude + check["beta"]) & (difference <= check["gray_tolerance"]) & in_view

        if trusted(STRICT_MOTION).mean() < self.cut_min_reliable:
            return self._cut(gray, ab, histogram)
        weight = self.strength * trusted(CARRY_MOTION).astype("float32")[..., None]
        stabilised = ab + weight * (warp(previous_ab, backward) - ab)
        self._previous = (gray, stabilised, histogram)
        return stabilised

    def _cut(self, gray, ab, histogram):
        self.cuts += 1
        self._previous = (gray, ab, histogram)
        return ab

    @staticmethod
    def _histogram(gray):
        cv2 = import_cv2()
        histogram = cv2.calcHist([gray], [0], None, [64], [0, 256])
        return cv2.normalize(histogram, histogram, norm_type=cv2.NORM_L1)
