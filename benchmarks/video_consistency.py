"""Temporal consistency and speed of film colorization, per frame and stabilised.

Clips with known camera motion: one shot per held-out photo (the photos the built-in
model never trained on: the 10 % seeded split of `recipes/backbone_unet_vgg16.yaml`),
the camera panning or zooming, 640x360, with a scene cut between photos. The exact flow
and the pixels that stay in view are known, so the warping error of Lai et al. (ECCV
2018) needs no estimated flow:

    E_warp = mean over consecutive pairs of sum_i M_i ||V_t(i) - V_t+1(i + F(i))||^2 / sum_i M_i

(sRGB in [0, 1], pairs across a cut left out). Beside the colorized clips: the source
clip itself (interpolation alone) and the gray baseline. Colourfulness (Hasler and
Suesstrunk) is the mean over frames. "colour across cuts" is the largest a*b* change the
stabiliser made on the first frame of a shot (0: nothing carried over).

Real clips (`--real-clip PATH`, any video): the same measures with the flow estimated by
OpenCV's Farneback method on the source frames (a different method from the DIS flow the
stabiliser uses). The mask keeps the pixels where that flow is forward-backward
consistent and the warped source frame matches the frame (gray levels within 16 of 255),
so that flow failures (moving objects, blur, cuts) are not counted as colour changes;
pairs where fewer than 20 % of the pixels are kept (cuts) are left out.

Throughput: `colorize_video` end to end (decode, colorize in batches of 8, stabilise,
H.264 encode) on the 640x360 clip written as MP4, per frame and stabilised.

Usage (one JSON line per measurement, then a Markdown table):

    python -m benchmarks.video_consistency
    python -m benchmarks.video_consistency --strengths 0.5,0.8,0.9 --real-clip bikes.mp4 --real-clip box.mp4
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import DEFAULT_PHOTOS, emit, machine

# Frames at which Farneback-consistent pixels are too few to compare a pair (a cut).
_MIN_CONSISTENT = 0.2


def _held_out_photos(folder, count, frame_size):
    """The first `count` held-out photos, scaled to cover the frame with the camera's margin."""
    import cv2

    from keras_colorize.data import holdout_files, load_image

    photos = []
    for path in holdout_files(folder, 0.1, seed=0)[:count]:
        photo = load_image(path)
        scale = max(1.0, 1.4 * frame_size[0] / photo.shape[0], 1.4 * frame_size[1] / photo.shape[1])
        if scale > 1.0:
            size = (int(np.ceil(photo.shape[1] * scale)), int(np.ceil(photo.shape[0] * scale)))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)
        photos.append(photo)
    return photos


def _colourfulness(frames):
    from keras_colorize.metrics.image_quality import colorfulness

    return float(np.mean([float(np.mean(np.asarray(colorfulness(batch.astype("float32") / 255.0)))) for batch in _batches(frames, 16)]))


def _batches(frames, size):
    return [frames[start : start + size] for start in range(0, len(frames), size)]


def _colorize(model, frames):
    from keras_colorize.video import DEFAULT_FRAME_BATCH, frame_colorizer

    colorize = frame_colorizer(model)
    return np.concatenate([colorize(batch) for batch in _batches(frames, DEFAULT_FRAME_BATCH)])


def _stabilise(frames, colorized, strength):
    from keras_colorize.video import DEFAULT_FRAME_BATCH, ChromaStabilizer
    from keras_colorize.video.colorize import stabilise_frames

    stabilizer = ChromaStabilizer(strength=strength)
    output = np.concatenate(
        [
            stabilise_frames(stabilizer, frames[start : start + DEFAULT_FRAME_BATCH], colorized[start : start + DEFAULT_FRAME_BATCH])
            for start in range(0, len(frames), DEFAULT_FRAME_BATCH)
        ]
    )
    return output, stabilizer.cuts


def _gray(frames):
    from keras_colorize.colorizer import gray_baseline

    return np.concatenate(
        [np.clip(np.rint(gray_baseline(batch.astype("float32") / 255.0) * 255), 0, 255).astype("uint8") for batch in _batches(frames, 16)]
    )


def _ab_change(first, second):
    from keras import ops

    from keras_colorize.color import rgb_to_lab

    lab = [ops.convert_to_numpy(rgb_to_lab(image.astype("float32")[None] / 255.0, "channels_last"))[0] for image in (first, second)]
    return float(np.abs(lab[0][..., 1:] - lab[1][..., 1:]).max())


def _farneback_motion(frames):
    """Flows (t -> t+1) and consistent masks from Farneback's method on the source frames."""
    import cv2

    from keras_colorize.video.flow import consistent_flow_mask, warp
    from keras_colorize.video.stabilization import STRICT_MOTION

    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    flows, masks = [], []
    for current, following in zip(grays, grays[1:]):
        forward = cv2.calcOpticalFlowFarneback(current, following, None, 0.5, 4, 21, 3, 7, 1.5, 0)
        backward = cv2.calcOpticalFlowFarneback(following, current, None, 0.5, 4, 21, 3, 7, 1.5, 0)
        mask = consistent_flow_mask(forward, backward)
        mask &= np.abs(warp(following, forward).astype("int16") - current) <= STRICT_MOTION["gray_tolerance"]
        flows.append(forward)
        masks.append(mask if mask.mean() >= _MIN_CONSISTENT else np.zeros_like(mask))
    return flows, masks


def _measure_clip(name, frames, flows, masks, colorized, strengths, cuts=None):
    from keras_colorize.video.flow import warping_error

    records = []
    base = {"clip": name, "frames": len(frames), "size": f"{frames.shape[2]}x{frames.shape[1]}"}
    per_frame_error = warping_error(colorized, flows, masks)
    per_frame_colour = _colourfulness(colorized)
    for label, video in (("source clip", frames), ("gray baseline", _gray(frames))):
        records.append({**base, "method": label, "e_warp": warping_error(video, flows, masks), "colourfulness": _colourfulness(video)})
    records.append({**base, "method": "per frame", "e_warp": per_frame_error, "colourfulness": per_frame_colour})
    for strength in strengths:
        stabilised, found_cuts = _stabilise(frames, colorized, strength)
        error = warping_error(stabilised, flows, masks)
        colour = _colourfulness(stabilised)
        record = {
            **base,
            "method": f"stabilised, strength {strength}",
            "e_warp": error,
            "e_warp_change": error / per_frame_error - 1.0,
            "colourfulness": colour,
            "colourfulness_change": colour / per_frame_colour - 1.0,
            "cuts_found": found_cuts,
        }
        if cuts is not None:
            record["cuts_true"] = len(cuts)
            record["colour_across_cuts"] = max([_ab_change(stabilised[cut], colorized[cut]) for cut in cuts] or [0.0])
        records.append(record)
    for record in records:
        emit(record)
    return records


def _throughput(model, clip_path, strength):
    from keras_colorize.video import ChromaStabilizer, colorize_video

    records = []
    with tempfile.TemporaryDirectory() as folder:
        colorize_video(model, clip_path, Path(folder) / "warmup.mp4", batch_size=8)
        for label, stabilizer in (("per frame", None), (f"stabilised, strength {strength}", ChromaStabilizer(strength))):
            result = colorize_video(model, clip_path, Path(folder) / "out.mp4", stabilizer=stabilizer)
            records.append({"throughput": label, "frames": result.frames, "frames_per_second": result.frames_per_second})
            emit(records[-1])
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="the photo folder (held-out split taken)")
    parser.add_argument("--shots", type=int, default=6, help="shots (one held-out photo each)")
    parser.add_argument("--frames-per-shot", type=int, default=24)
    parser.add_argument("--strengths", default="0.5,0.8,0.9", help="stabilisation strengths, comma-separated")
    parser.add_argument("--real-clip", type=Path, action="append", default=[], help="a real video clip (repeatable)")
    parser.add_argument("--max-real-frames", type=int, default=300)
    args = parser.parse_args(argv)
    import keras

    from keras_colorize.loading import load_photo_colorizer
    from keras_colorize.presets import DEFAULT_PRESET
    from keras_colorize.video import VideoReader, VideoWriter
    from keras_colorize.video.synthetic import camera_motion_clip

    strengths = [float(value) for value in args.strengths.split(",")]
    emit({"machine": machine(), "backend": keras.backend.backend(), "model": DEFAULT_PRESET})
    model = load_photo_colorizer(DEFAULT_PRESET)
    clip = camera_motion_clip(_held_out_photos(args.photos, args.shots, (360, 640)), (360, 640), args.frames_per_shot)
    records = _measure_clip(
        "camera motion over held-out photos", clip.frames, clip.flows, clip.masks, _colorize(model, clip.frames), strengths, clip.cuts
    )
    for path in args.real_clip:
        with VideoReader(path) as reader:
            frames = []
            for frame in reader.frames():
                frames.append(frame)
                if len(frames) == args.max_real_frames:
                    break
        frames = np.stack(frames)
        flows, masks = _farneback_motion(frames)
        records += _measure_clip(path.name, frames, flows, masks, _colorize(model, frames), strengths)
        emit({"clip": path.name, "pairs_left_out_as_cuts": int(sum(not mask.any() for mask in masks))})
    with tempfile.TemporaryDirectory() as folder:
        clip_path = Path(folder) / "clip.mp4"
        writer = VideoWriter(clip_path, 640, 360, frame_rate=24)
        for frame in clip.frames:
            writer.write_frame(frame)
        writer.close()
        throughput = _throughput(model, clip_path, 0.8)
    print("\n| clip | method | E_warp | vs per frame | colourfulness | vs per frame | cuts found / true | colour across cuts |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for record in records:
        change = f"{record['e_warp_change']:+.0%}" if "e_warp_change" in record else ""
        colour_change = f"{record['colourfulness_change']:+.1%}" if "colourfulness_change" in record else ""
        cuts = f"{record['cuts_found']} / {record.get('cuts_true', '?')}" if "cuts_found" in record else ""
        across = f"{record['colour_across_cuts']:.2f}" if "colour_across_cuts" in record else ""
        print(
            f"| {record['clip']} ({record['size']}, {record['frames']} frames) | {record['method']} | {record['e_warp']:.5f} "
            f"| {change} | {record['colourfulness']:.2f} | {colour_change} | {cuts} | {across} |"
        )
    print("\n| 640x360, end to end | frames/s |\n| --- | --- |")
    for record in throughput:
        print(f"| {record['throughput']} | {record['frames_per_second']:.2f} |")


if __name__ == "__main__":
    main()
