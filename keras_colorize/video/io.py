"""Reading and writing video files with PyAV (FFmpeg in its wheels; no system ffmpeg).

Frames are uint8 sRGB arrays of shape (H, W, 3). The writer keeps the source's frame
timestamps (so frame rate, frame count and audio sync are kept) and copies its audio
streams packet by packet; an audio codec the output container cannot hold is re-encoded
with the container's default audio codec.
"""

import fractions
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_colorize.data.files import VIDEO_EXTENSIONS
from keras_colorize.errors import UserInputError, first_line
from keras_colorize.video.dependencies import import_av

# By file suffix: FFmpeg's container format, the video codec and its settings. Visually
# lossless H.264 where the container takes it, VP9 in WebM, MPEG-4 part 2 in AVI.
_H264 = ("libx264", {"crf": "17", "preset": "medium"})
_CONTAINERS = {
    ".mp4": ("mp4", *_H264),
    ".mov": ("mov", *_H264),
    ".mkv": ("matroska", *_H264),
    ".webm": ("webm", "libvpx-vp9", {"crf": "24", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}),
    ".avi": ("avi", "mpeg4", {}),
}
# Frames decoded and colorized together (a batch of 4K frames is about 200 MB of uint8).
DEFAULT_FRAME_BATCH = 8
# Bits per pixel and frame of the AVI (MPEG-4 part 2) output: about 8 Mbit/s at 720x576, 25 fps.
_AVI_BITS_PER_PIXEL = 0.8


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    Attributes:
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        frame_rate: fractions.Fraction. Average frames per second.
        frame_count: int. Frames, as the container states them (0 when it does not).
        duration: float. Seconds (0.0 when unknown).
        audio_streams: int. Audio streams (copied to the output).
    """

    width: int
    height: int
    frame_rate: fractions.Fraction
    frame_count: int
    duration: float
    audio_streams: int

    @property
    def estimated_frames(self):
        """The frame count, else duration x frame rate (for a progress bar), else 0."""
        if self.frame_count:
            return self.frame_count
        return int(round(self.duration * float(self.frame_rate))) if self.duration and self.frame_rate else 0


def _open_input(path):
    av = import_av()
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise UnreadableVideoError(f"{path}: not a readable video ({first_line(error)})") from None
    if not container.streams.video:
        container.close()
        raise UnreadableVideoError(f"{path}: holds no video stream")
    return container


class UnreadableVideoError(UserInputError):
    """A video file that cannot be decoded (corrupt, truncated, or not a video)."""


class VideoReader:
    """Decodes a video file's first video stream into uint8 sRGB frames, and hands over its audio packets.

    Args:
        path: str or Path. The video file.

    Raises:
        UnreadableVideoError: the file is not a video FFmpeg can read.

    Examples:
        >>> from keras_colorize.video import VideoReader
        >>> with VideoReader("film.mp4") as reader:  # doctest: +SKIP
        ...     for frame in reader.frames():
        ...         print(frame.shape)  # (H, W, 3) uint8
    """

    def __init__(self, path):
        self.path = Path(path)
        self.container = _open_input(self.path)
        self.video_stream = self.container.streams.video[0]
        self.video_stream.thread_type = "AUTO"
        self.audio_streams = list(self.container.streams.audio)
        stream = self.video_stream
        rate = stream.average_rate or stream.guessed_rate or fractions.Fraction(25)
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if not duration and self.container.duration:
            duration = self.container.duration / 1_000_000
        self.info = VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frame_rate=fractions.Fraction(rate),
            frame_count=int(stream.frames or 0),
            duration=duration,
            audio_streams=len(self.audio_streams),
        )
        if not self.info.width or not self.info.height:
            self.close()
            raise UnreadableVideoError(f"{self.path}: its video stream has no frame size")

    def packets_and_frames(self):
        """Demux the file: yields ("frame", av.VideoFrame) for each decoded video frame
        and ("audio", av.Packet) for each audio packet, in file order.

        Raises:
            UnreadableVideoError: decoding fails (corrupt or truncated data).
        """
        av = import_av()
        try:
            for packet in self.container.demux(self.video_stream, *self.audio_streams):
                if packet.stream.type == "video":
                    for frame in packet.decode():
                        yield "frame", frame
                elif packet.dts is not None:
                    yield "audio", packet
        except av.FFmpegError as error:
            raise UnreadableVideoError(f"{self.path}: cannot decode ({first_line(error)})") from None

    def frames(self):
        """Yields each frame as uint8 sRGB, shape (H, W, 3)."""
        for kind, item in self.packets_and_frames():
            if kind == "frame":
                yield item.to_ndarray(format="rgb24")

    def close(self):
        """Close the file."""
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def read_video_info(path):
    """The `VideoInfo` of a video file (see `VideoReader`)."""
    with VideoReader(path) as reader:
        return reader.info


class VideoWriter:
    """Encodes uint8 sRGB frames into a video file, with the audio streams of a source copied.

    The codec follows the file suffix (`VIDEO_EXTENSIONS`): H.264 (CRF 17) in MP4, MOV
    and MKV, VP9 in WebM, MPEG-4 part 2 in AVI. `VideoWriter.like(path, reader)`
    writes a video with the size, frame timing and audio of a `VideoReader`'s file.

    Args:
        path: str or Path. The output file (its suffix picks the container).
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        frame_rate: fractions.Fraction or int. Frames per second.
        time_base: fractions.Fraction or None. Unit of the frame timestamps given to
            `write_frame`. Defaults to None (1 / frame_rate: frame numbers).
        audio_streams: sequence of av.AudioStream. Source audio streams whose packets
            `write_audio` copies. Defaults to none.

    Raises:
        UserInputError: the suffix is not a supported video container.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.video import VideoWriter
        >>> writer = VideoWriter("clip.mp4", 64, 48, frame_rate=25)  # doctest: +SKIP
        >>> writer.write_frame(np.zeros((48, 64, 3), np.uint8))  # doctest: +SKIP
        >>> writer.close()  # doctest: +SKIP
    """

    def __init__(self, path, width, height, frame_rate, time_base=None, audio_streams=()):
        av = import_av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CONTAINERS:
            raise UserInputError(f"{self.path}: unsupported video container (use one of {', '.join(VIDEO_EXTENSIONS)})")
        container_format, codec, options = _CONTAINERS[suffix]
        self.container = av.open(str(self.path), mode="w", format=container_format)
        frame_rate = fractions.Fraction(frame_rate)
        self.video_stream = self.container.add_stream(codec, rate=frame_rate, options=dict(options))
        self.video_stream.width, self.video_stream.height = width, height
        # 4:2:0 chroma needs even sizes in H.264; 4:4:4 keeps an odd-sized film's exact size.
        odd = width % 2 or height % 2
        self.video_stream.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
        if codec == "mpeg4":
            self.video_stream.bit_rate = int(width * height * float(frame_rate) * _AVI_BITS_PER_PIXEL)
        # AVI stores a constant frame rate: its time base stays 1 / frame rate (timestamps are rescaled).
        if time_base is not None and suffix != ".avi":
            self.video_stream.time_base = time_base
            self.video_stream.codec_context.time_base = time_base
        self._frame_rate = frame_rate
        self._frame_time_base = time_base or 1 / frame_rate
        self._frames = 0
        self.audio_outputs = {audio.index: self._audio_output(audio) for audio in audio_streams}

    @classmethod
    def like(cls, path, reader):
        """A writer with the frame size, frame timing and audio streams of `reader`'s file."""
        info = reader.info
        return cls(path, info.width, info.height, info.frame_rate, reader.video_stream.time_base, reader.audio_streams)

    def _audio_output(self, audio):
        """An output stream for a source audio stream: ("copy", stream) or ("encode", stream, decoder)."""
        if audio.codec_context.name in self.container.supported_codecs:
            try:
                return ("copy", self.container.add_stream_from_template(audio))
            except ValueError:
                pass
        codec = self.container.default_audio_codec
        stream = self.container.add_stream(codec, rate=48000 if codec in ("libopus", "opus") else audio.rate or 48000)
        return ("encode", stream)

    def write_frame(self, rgb, pts=None):
        """Encode one uint8 sRGB frame (H, W, 3).

        Args:
            rgb: uint8 array (H, W, 3).
            pts: int or None. Timestamp in the writer's `time_base` (a source frame's
                `pts`). Defaults to None (the frame's number).
        """
        av = import_av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if pts is None:  # the frame's number, in the time base
            pts = round(self._frames / (self._frame_rate * self._frame_time_base))
        frame.pts = pts
        frame.time_base = self._frame_time_base
        self._frames += 1
        for packet in self.video_stream.encode(frame):
            self.container.mux(packet)

    def write_audio(self, packet):
        """Copy (or re-encode) one audio packet of the source."""
        output = self.audio_outputs.get(packet.stream.index)
        if output is None:
            return
        mode, stream = output
        if mode == "copy":
            packet.stream = stream
            self.container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for encoded in stream.encode(frame):
                self.container.mux(encoded)

    def close(self):
        """Flush the encoders and close the file."""
        for packet in self.video_stream.encode(None):
            self.container.mux(packet)
        for mode, stream in self.audio_outputs.values():
            if mode == "encode":
                for packet in stream.encode(None):
                    self.container.mux(packet)
        self.container.close()

