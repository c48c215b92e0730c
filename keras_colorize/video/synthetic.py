"""Clips with known camera motion made from still photos, to measure temporal consistency.

A virtual camera pans across or zooms into a photo; since the motion is known, so is the
exact optical flow between consecutive frames and the pixels that stay in view, which is
what the warping error (`warping_error`) needs without estimating flow. Shots of several
photos joined end to end give scene cuts at known frames.
"""

from dataclasses import dataclass

import numpy as np

from keras_colorize.video.dependencies import import_cv2

# How much larger than the frame the photo is scaled, so that the camera can move inside it.
_MARGIN = 1.35


@dataclass(frozen=True)
class MotionClip:
    """Frames with their exact motion.

    Attributes:
        frames: uint8 sRGB, shape (T, H, W, 3).
        flows: float32, shape (T - 1, H, W, 2). flows[t] maps frame t to frame t + 1
            (frame_t(x) = frame_t+1(x + flow(x))).
        masks: bool, shape (T - 1, H, W). Pixels of frame t still in view in frame t + 1;
            all False across a scene cut.
        cuts: tuple of int. Indices of the first frame of each shot after the first.
    """

    frames: np.ndarray
    flows: np.ndarray
    masks: np.ndarray
    cuts: tuple


def _camera(photo_shape, frame_size, motion, progress):
    """The 2x3 affine map from frame pixels to photo pixels at `progress` in [0, 1] of the shot."""
    (photo_h, photo_w), (frame_h, frame_w) = photo_shape, frame_size
    scale = min(photo_h / frame_h, photo_w / frame_w) / _MARGIN  # photo pixels per frame pixel
    centre_x, centre_y = photo_w / 2.0, photo_h / 2.0
    travel_x = (photo_w - frame_w * scale) / 2.0 * 0.9
    if motion == "pan":
        centre_x += (2.0 * progress - 1.0) * travel_x
    elif motion == "zoom":
        scale *= 1.0 - 0.25 * progress  # zoom in by a third over the shot
    else:
        raise ValueError(f"unknown motion {motion!r} (use 'pan' or 'zoom')")
    return np.array(
        [[scale, 0.0, centre_x - scale * (frame_w - 1) / 2.0], [0.0, scale, centre_y - scale * (frame_h - 1) / 2.0]],
        "float64",
    )


def camera_motion_clip(photos, frame_size=(360, 640), frames_per_shot=24, motions=("pan", "zoom")):
    """A clip of one shot per photo, the camera panning or zooming (alternately), with exact flows.

    Args:
        photos: sequence of uint8 sRGB photos (H, W, 3), each at least as large as
            `frame_size` times 1.35 (they are not upscaled here).
        frame_size: (int, int). Frame height and width. Defaults to (360, 640).
        frames_per_shot: int >= 2. Defaults to 24.
        motions: sequence of "pan" and "zoom", used in turn. Defaults to ("pan", "zoom").

    Returns:
        MotionClip.
    """
    cv2 = import_cv2()
    frame_h, frame_w = frame_size
    grid_x, grid_y = np.meshgrid(np.arange(frame_w, dtype="float64"), np.arange(frame_h, dtype="float64"))
    points = np.stack([grid_x, grid_y, np.ones_like(grid_x)], axis=-1)
    frames, flows, masks, cuts = [], [], [], []
    for shot, photo in enumerate(photos):
        motion = motions[shot % len(motions)]
        cameras = [_camera(photo.shape[:2], frame_size, motion, t / (frames_per_shot - 1)) for t in range(frames_per_shot)]
        if shot:
            cuts.append(len(frames))
            flows.append(np.zeros((frame_h, frame_w, 2), "float32"))
            masks.append(np.zeros((frame_h, frame_w), bool))
        for index, camera in enumerate(cameras):
            frames.append(
                cv2.warpAffine(photo, camera, (frame_w, frame_h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)
            )
            if index + 1 < len(cameras):
                following = cameras[index + 1]
                in_photo = points @ camera.T  # frame t pixel -> photo point
                inverse = np.linalg.inv(np.vstack([following, [0.0, 0.0, 1.0]]))[:2]
                target = np.concatenate([in_photo, np.ones_like(in_photo[..., :1])], axis=-1) @ inverse.T
                flow = (target - points[..., :2]).astype("float32")
                inside = (target[..., 0] >= 0) & (target[..., 0] <= frame_w - 1)
                inside &= (target[..., 1] >= 0) & (target[..., 1] <= frame_h - 1)
                flows.append(flow)
                masks.append(inside)
    return MotionClip(np.stack(frames), np.stack(flows), np.stack(masks), tuple(cuts))
