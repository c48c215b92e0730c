"""Film colorization: video files in and out, batched colorization, optical flow, the
warping error and temporal stabilisation, on every backend.

Clips are written here with PyAV directly (not with the toolkit's writer) from real
photos with known camera motion, with a sine tone as audio.
"""

import fractions

import av
import numpy as np
import pytest
from PIL import Image

import keras
from keras_colorize import Colorizer
from keras_colorize.color import rgb_to_lab
from keras_colorize.errors import UserInputError
from keras_colorize.models import UNetV2
from keras_colorize.video import (
    ChromaStabilizer,
    FlowEstimator,
    UnreadableVideoError,
    VideoReader,
    colorize_video,
    consistent_flow_mask,
    read_video_info,
    warping_error,
)
from keras_colorize.video.colorize import stabilise_frames
from keras_colorize.video.synthetic import camera_motion_clip
from tests.test_case import assert_one_line_error, invoke_cli

FRAME_SIZE = (72, 128)
AUDIO_RATE = 48000
# Containers and the audio codec a camera or an editor would put in them.
CONTAINERS = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus", ".avi": "mp3"}


def write_clip(path, frames, rate=25, audio_codec="aac"):
    """Encode uint8 frames (T, H, W, 3) with PyAV, with a 440 Hz tone as long as the video."""
    container = av.open(str(path), "w")
    video = container.add_stream("libvpx-vp9" if path.suffix == ".webm" else "libx264" if path.suffix != ".avi" else "mpeg4", rate=rate)
    odd = frames.shape[1] % 2 or frames.shape[2] % 2
    video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p" if odd else "yuv420p"
    audio = None
    if audio_codec is not None and audio_codec in av.codecs_available:
        audio = container.add_stream(audio_codec, rate=AUDIO_RATE)
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame.pts, frame.time_base = index, fractions.Fraction(1, rate)
        for packet in video.encode(frame):
            container.mux(packet)
    if audio is not None:
        samples = int(AUDIO_RATE * len(frames) / rate)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / AUDIO_RATE)).astype("float32")[None]
        for start in range(0, samples, 960):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start : start + 960]), format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = AUDIO_RATE, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)
    container.close()
    return path


def decode(path):
    """Every frame (uint8 RGB) of a file's video stream, and its stream facts, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame for frame in container.decode(stream)]
        audio = [(s.codec_context.name, float(s.duration * s.time_base) if s.duration else None) for s in container.streams.audio]
        return {
            "frames": np.stack([frame.to_ndarray(format="rgb24") for frame in frames]),
            "times": [float(frame.time) for frame in frames],
            "rate": stream.average_rate,
            "size": (stream.codec_context.height, stream.codec_context.width),
            "audio": audio,
        }


def lightness(frames):
    return keras.ops.convert_to_numpy(rgb_to_lab(frames.astype("float32") / 255.0, "channels_last"))[..., 0]


@pytest.fixture(scope="module")
def motion(photo_paths):
    """Three shots (pan, zoom, pan) over real photos at 128x72, 8 frames each, with their exact flows."""
    photos = [np.asarray(Image.open(path).convert("RGB")) for path in photo_paths[:3]]
    return camera_motion_clip(photos, frame_size=FRAME_SIZE, frames_per_shot=8)


@pytest.fixture(scope="module")
def colorizer():
    keras.utils.set_random_seed(3)
    model = Colorizer(UNetV2(encoder_filters=(8, 16, 16), decoder_filters=(16, 8)), image_size=32)
    model.build()
    return model


@pytest.fixture(scope="module")
def checkpoint(colorizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("video_model") / "colorizer.keras"
    colorizer.save(path)
    return path


class FlickeringColorizer:
    """The true colours of a clip's frames with a random a*b* shift per frame: the flicker
    of a colorizer that sees each frame alone (frames must come in clip order)."""

    def __init__(self, seed=0, shift=12.0):
        self._random = np.random.default_rng(seed)
        self._shift = shift

    def colorize_batch(self, frames):
        lab = keras.ops.convert_to_numpy(rgb_to_lab(frames.astype("float32") / 255.0, "channels_last"))
        lab[..., 1:] += self._random.uniform(-self._shift, self._shift, (len(frames), 1, 1, 2))
        from keras_colorize.color import lab_to_rgb

        rgb = keras.ops.convert_to_numpy(lab_to_rgb(lab, "channels_last"))
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype("uint8")


def colourfulness(frames):
    from keras_colorize.metrics.image_quality import colorfulness

    return float(np.mean(keras.ops.convert_to_numpy(colorfulness(frames.astype("float32") / 255.0))))


# ----------------------------------------------------------------------------- colorizing


def test_a_batch_of_frames_is_colorized_as_each_photo_alone(colorizer, motion):
    frames = motion.frames[:5]
    batched = colorizer.colorize_batch(frames)
    assert batched.dtype == np.uint8 and batched.shape == frames.shape
    np.testing.assert_array_equal(batched, np.stack([colorizer.colorize(frame) for frame in frames]))
    with pytest.raises(UserInputError, match=r"\(N, H, W, 3\)"):
        colorizer.colorize_batch(frames[0])


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_a_film_comes_out_with_its_timing_size_audio_and_lightness(colorizer, motion, tmp_path, suffix):
    source = write_clip(tmp_path / f"film{suffix}", motion.frames, audio_codec=CONTAINERS[suffix])
    given = decode(source)
    target = tmp_path / "out" / f"film{suffix}"
    result = colorize_video(colorizer, source, target, stabilizer=ChromaStabilizer(), batch_size=5)
    got = decode(target)
    assert result.frames == len(given["frames"]) == len(got["frames"]) == len(motion.frames)
    assert got["size"] == given["size"] == FRAME_SIZE
    assert got["rate"] == given["rate"] == 25
    np.testing.assert_allclose(got["times"], given["times"], atol=1e-3)
    assert len(got["audio"]) == len(given["audio"]) == 1
    if suffix != ".webm":
        assert got["audio"][0][0] == given["audio"][0][0]  # copied, not re-encoded
    # The colour is new; the lightness is the film's own (up to the video codec's rounding).
    assert np.abs(lightness(got["frames"]) - lightness(given["frames"])).mean() < 1.5
    assert not np.array_equal(got["frames"], given["frames"])
    assert result.scene_cuts == len(motion.cuts)
    assert sorted(path.name for path in target.parent.iterdir()) == [target.name]  # no temporary file left


def test_an_odd_sized_film_keeps_its_size(colorizer, motion, tmp_path):
    source = write_clip(tmp_path / "odd.mkv", motion.frames[:6, :71, :127], audio_codec=None)
    colorize_video(colorizer, source, tmp_path / "odd_out.mkv")
    assert decode(tmp_path / "odd_out.mkv")["frames"].shape == (6, 71, 127, 3)


def test_an_interrupted_film_leaves_no_file(motion, tmp_path):
    class Interrupted:
        calls = 0

        def colorize(self, frame):
            self.calls += 1
            if self.calls == 10:
                raise KeyboardInterrupt
            return frame

    source = write_clip(tmp_path / "film.mp4", motion.frames)
    target = tmp_path / "out" / "film.mp4"
    with pytest.raises(KeyboardInterrupt):
        colorize_video(Interrupted(), source, target, batch_size=4)
    assert list((tmp_path / "out").iterdir()) == []


def test_unreadable_videos_are_one_line_errors(colorizer, tmp_path):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableVideoError, match="noise.mp4: not a readable video"):
        read_video_info(noise)
    silent = tmp_path / "sound.mp4"
    container = av.open(str(silent), "w")
    stream = container.add_stream("aac", rate=AUDIO_RATE)
    tone = np.zeros((1, 4096), "float32")
    frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
    frame.sample_rate = AUDIO_RATE
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)
    container.close()
    with pytest.raises(UnreadableVideoError, match="sound.mp4: holds no video stream"):
        colorize_video(colorizer, silent, tmp_path / "out.mp4")
    with pytest.raises(UserInputError, match="unsupported video container"):
        with VideoReader(write_clip(tmp_path / "ok.mp4", np.zeros((2, 16, 16, 3), "uint8"), audio_codec=None)) as reader:
            from keras_colorize.video import VideoWriter

            VideoWriter.like(tmp_path / "out.gif", reader)
    assert not (tmp_path / "out.mp4").exists()


# ----------------------------------------------------------------------------- flow and the warping error


def test_the_flow_follows_the_known_camera_motion(motion):
    import cv2

    estimator = FlowEstimator()
    for index in (2, 10, 18):  # a pan, a zoom, a pan
        gray_a, gray_b = (cv2.cvtColor(motion.frames[index + k], cv2.COLOR_RGB2GRAY) for k in (0, 1))
        forward, backward = estimator(gray_a, gray_b), estimator(gray_b, gray_a)
        exact, in_view = motion.flows[index], motion.masks[index]
        reliable = consistent_flow_mask(forward, backward)
        error = np.linalg.norm(forward - exact, axis=-1)
        assert np.median(error[reliable & in_view]) < 0.5, index
        assert np.abs(exact[in_view]).max() > 1.0  # the camera does move
        assert (reliable & ~in_view).sum() < 0.5 * (~in_view).sum()  # most points leaving the frame are not trusted
        assert reliable.mean() > 0.5


def test_the_warping_error_is_the_masked_mean_of_squared_rgb_differences():
    random = np.random.default_rng(0)
    frames = random.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    shift = np.zeros((20, 30, 2), "float32")
    shift[..., 0], shift[..., 1] = 2.0, 1.0  # x + (2, 1)
    mask = np.zeros((20, 30), bool)
    mask[:19, :28] = True
    empty = np.zeros_like(mask)
    expected_pair = np.sum(
        (frames[0, :19, :28].astype("float64") / 255 - frames[1, 1:, 2:].astype("float64") / 255) ** 2, axis=-1
    ).mean()
    still = np.zeros_like(shift)
    expected_still = np.sum((frames[1].astype("float64") / 255 - frames[2].astype("float64") / 255) ** 2, axis=-1).mean()
    got = warping_error(frames, [shift, still], [mask, np.ones_like(mask)])
    np.testing.assert_allclose(got, (expected_pair + expected_still) / 2, rtol=1e-5)
    np.testing.assert_allclose(warping_error(frames, [shift, still], [mask, empty]), expected_pair, rtol=1e-5)
    np.testing.assert_allclose(warping_error(frames, [motion_free := still, still], [empty, mask]), 0.0 + np.sum(
        (frames[1, :19, :28].astype("float64") / 255 - frames[2, :19, :28].astype("float64") / 255) ** 2, axis=-1).mean(),
        rtol=1e-5)
    assert motion_free is still


# ----------------------------------------------------------------------------- stabilisation


def stabilise(frames, colorized, strength, batch=5):
    stabilizer = ChromaStabilizer(strength=strength)
    output = np.concatenate(
        [stabilise_frames(stabilizer, frames[i : i + batch], colorized[i : i + batch]) for i in range(0, len(frames), batch)]
    )
    return output, stabilizer.cuts


def test_stabilisation_removes_flicker_keeps_colour_and_stops_at_cuts(motion):
    flickering = FlickeringColorizer().colorize_batch(motion.frames)
    per_frame = warping_error(flickering, motion.flows, motion.masks)
    stabilised, cuts = stabilise(motion.frames, flickering, strength=0.8)
    assert cuts == len(motion.cuts)
    assert warping_error(stabilised, motion.flows, motion.masks) < 0.6 * per_frame
    assert abs(colourfulness(stabilised) / colourfulness(flickering) - 1.0) < 0.1
    # No colour crosses a cut: each shot starts with its own prediction.
    for start in (0, *motion.cuts):
        np.testing.assert_array_equal(stabilised[start], flickering[start])
    assert not np.array_equal(stabilised[1], flickering[1])
    # Strength 0 is per-frame colorization.
    unchanged, _ = stabilise(motion.frames, flickering, strength=0.0)
    np.testing.assert_array_equal(unchanged, flickering)


def test_on_a_still_frame_the_colour_is_a_moving_average():
    gray = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    stabilizer = ChromaStabilizer(strength=0.5)
    predictions = [np.full((48, 64, 2), value, "float32") for value in (10.0, 30.0, 30.0)]
    outputs = [stabilizer(gray, ab) for ab in predictions]
    np.testing.assert_allclose([output[24, 32, 0] for output in outputs], [10.0, 20.0, 25.0], atol=0.05)
    with pytest.raises(UserInputError, match=r"strength must be in \[0, 1\)"):
        ChromaStabilizer(strength=1.0)


def test_large_frames_are_stabilised_on_a_smaller_copy():
    random = np.random.default_rng(1)
    gray = np.repeat(np.repeat(random.integers(0, 256, (90, 160), dtype=np.uint8), 8, axis=0), 8, axis=1)  # 1280x720
    stabilizer = ChromaStabilizer(strength=0.5)
    first = random.uniform(-20, 20, (720, 1280, 2)).astype("float32")
    assert stabilizer(gray, first) is first
    second = first + 8.0
    output = stabilizer(gray, second)
    assert output.shape == (720, 1280, 2)
    np.testing.assert_allclose(np.median(output - second), -4.0, atol=0.2)


# ----------------------------------------------------------------------------- the command


def test_colorize_command_takes_videos_beside_photos(checkpoint, colorizer, motion, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "reel").mkdir(parents=True)
    Image.fromarray(motion.frames[0]).save(inputs / "still.png")
    write_clip(inputs / "reel" / "film.mp4", motion.frames)
    write_clip(inputs / "short.webm", motion.frames[:6], audio_codec="libopus")
    (inputs / "broken.mov").write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    result = invoke_cli("colorize", checkpoint, inputs, "-o", out)
    assert result.exit_code == 0, result.output
    assert "colorized 1 image and 2 videos" in result.stdout and "skipped 1 unreadable" in result.stdout
    assert "broken.mov: not a readable video" in result.stderr
    assert "2 scene cuts" in result.stdout and "frames/s" in result.stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "reel/film.mp4",
        "short.webm",
        "still.png",
    ]
    assert decode(out / "short.webm")["frames"].shape == (6, *FRAME_SIZE, 3)

    again = invoke_cli("colorize", checkpoint, inputs / "reel" / "film.mp4", "-o", out / "reel")
    assert_one_line_error(again, "film.mp4: already exists", "--overwrite")

    # Without stabilisation each frame is the photo colorization of the decoded frame.
    plain = invoke_cli("colorize", checkpoint, inputs / "reel" / "film.mp4", "-o", tmp_path / "plain", "--no-stabilize")
    assert plain.exit_code == 0, plain.output
    source = decode(inputs / "reel" / "film.mp4")["frames"]
    expected = colorizer.colorize_batch(source)
    got = decode(tmp_path / "plain" / "film.mp4")["frames"]
    assert np.abs(got.astype("int16") - expected).mean() < 2.0
    stabilised = decode(out / "reel" / "film.mp4")["frames"]
    assert np.abs(stabilised.astype("int16") - got).max() > 0  # stabilisation changed something

    bad = invoke_cli("colorize", checkpoint, inputs / "short.webm", "-o", tmp_path / "x", "--stabilize-strength", "1.5")
    assert bad.exit_code == 2 and "--stabilize-strength" in bad.output


def test_an_instruct_pix2pix_preset_colorizes_a_film_frame_by_frame(motion, tmp_path):
    from keras_colorize.models.instruct_pix2pix.convert.preset import random_components, save_preset

    preset = save_preset(tmp_path / "preset", random_components(seed=0))
    source = write_clip(tmp_path / "film.mkv", motion.frames[:3, :64, :64], audio_codec=None)
    args = ("colorize", "--model", preset, source, "--steps", "1", "--size", "32", "--no-stabilize")
    first = invoke_cli(*args, "-o", tmp_path / "a")
    assert first.exit_code == 0, first.output
    second = invoke_cli(*args, "-o", tmp_path / "b")
    assert second.exit_code == 0, second.output
    frames_a, frames_b = decode(tmp_path / "a" / "film.mkv")["frames"], decode(tmp_path / "b" / "film.mkv")["frames"]
    assert frames_a.shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(frames_a, frames_b)  # seeded: the same film twice
