"""Colorizing a video file: decode, colorize in batches, stabilise, encode, as a stream."""

import time
from dataclasses import dataclass

import numpy as np

from keras_colorize.atomic_files import atomic_file
from keras_colorize.video.dependencies import import_cv2
from keras_colorize.video.io import DEFAULT_FRAME_BATCH, VideoReader, VideoWriter


@dataclass(frozen=True)
class VideoResult:
    """What `colorize_video` did.

    Attributes:
        frames: int. Frames written.
        scene_cuts: int. Scene cuts the stabiliser found (0 without stabilisation).
        seconds: float. Wall time.
    """

    frames: int
    scene_cuts: int
    seconds: float

    @property
    def frames_per_second(self):
        """Frames colorized per second of wall time."""
        return self.frames / self.seconds if self.seconds else 0.0


def frame_colorizer(colorizer):
    """A function (N, H, W, 3) uint8 frames -> (N, H, W, 3) uint8 colorized frames.

    One model call per batch where the colorizer has `colorize_batch` (a Keras
    `Colorizer` and the built-in model), else one `colorize` call per frame (exported
    SavedModel or ONNX files, InstructPix2Pix presets).
    """
    batched = getattr(colorizer, "colorize_batch", None)
    if batched is not None:
        return batched
    return lambda frames: np.stack([colorizer.colorize(frame) for frame in frames])


def stabilise_frames(stabilizer, frames, colorized):
    """Stabilise colorized frames in order; frames the stabiliser leaves unchanged are returned as they are.

    Args:
        stabilizer: ChromaStabilizer. Carries the colour from one call to the next.
        frames: uint8 sRGB source frames (N, H, W, 3) (their lightness guides the flow).
        colorized: uint8 sRGB colorized frames (N, H, W, 3).

    Returns:
        uint8 sRGB frames (N, H, W, 3).
    """
    from keras import ops

    from keras_colorize.color import lab_to_rgb, rgb_to_lab

    cv2 = import_cv2()
    lab = ops.convert_to_numpy(rgb_to_lab(ops.convert_to_tensor(colorized.astype("float32") / 255.0), "channels_last"))
    changed = []
    for index, (frame, frame_lab) in enumerate(zip(frames, lab)):
        ab = frame_lab[..., 1:].copy()
        stabilised = stabilizer(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), ab)
        if stabilised is not ab and np.any(stabilised != ab):
            lab[index, ..., 1:] = stabilised
            changed.append(index)
    if not changed:
        return colorized
    output = colorized.copy()
    recombined = lab_to_rgb(ops.convert_to_tensor(lab[changed]), "channels_last")
    output[changed] = np.clip(np.rint(ops.convert_to_numpy(recombined) * 255.0), 0, 255).astype("uint8")
    return output


def colorize_video(colorizer, source, target, stabilizer=None, batch_size=DEFAULT_FRAME_BATCH, progress=False):
    """Colorize a video file into another, frame rate, size, frame count and audio kept.

    Frames are decoded, colorized `batch_size` at a time at full resolution (each
    frame keeps its own L*, as photos do), stabilised over time when `stabilizer` is
    given, and encoded as they come, so memory does not grow with the film's length.
    The output appears whole when done (written to a temporary file first); an
    interruption or an error leaves no partial file.

    Args:
        colorizer: any colorizer with `colorize(image)` (see `load_photo_colorizer`),
            batched when it has `colorize_batch(frames)`.
        source: str or Path. The video to colorize (MP4, MOV, MKV, WebM, AVI, ...).
        target: str or Path. The output file; its suffix picks the container (see
            `VIDEO_EXTENSIONS`).
        stabilizer: ChromaStabilizer or None. Temporal stabilisation. Defaults to None (off).
        batch_size: int. Frames per model call. Defaults to 8.
        progress: bool. Show a progress bar (frames, frames/s, time left). Defaults to False.

    Returns:
        VideoResult.

    Raises:
        UnreadableVideoError: the source cannot be decoded.
        UserInputError: the target's suffix is not a video container.
    """
    import keras

    colorize_frames = frame_colorizer(colorizer)
    start = time.perf_counter()
    written = 0
    with VideoReader(source) as reader, atomic_file(target) as temporary:
        writer = VideoWriter.like(temporary, reader)
        total = reader.info.estimated_frames or None
        bar = keras.utils.Progbar(total, unit_name="frame", stateful_metrics=["frames/s"]) if progress else None
        pending = []

        def flush():
            nonlocal written
            frames = np.stack([frame.to_ndarray(format="rgb24") for frame in pending])
            colorized = colorize_frames(frames)
            if stabilizer is not None:
                colorized = stabilise_frames(stabilizer, frames, colorized)
            for rgb, source_frame in zip(colorized, pending):
                writer.write_frame(rgb, source_frame.pts)
            written += len(pending)
            pending.clear()
            if bar is not None:
                bar.update(min(written, total) if total else written, [("frames/s", written / (time.perf_counter() - start))])

        try:
            for kind, item in reader.packets_and_frames():
                if kind == "audio":
                    writer.write_audio(item)
                    continue
                pending.append(item)
                if len(pending) == batch_size:
                    flush()
            if pending:
                flush()
        finally:
            writer.close()
    return VideoResult(frames=written, scene_cuts=stabilizer.cuts if stabilizer is not None else 0,
                       seconds=time.perf_counter() - start)
