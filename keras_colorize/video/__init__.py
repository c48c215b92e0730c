"""Video: colorize films frame by frame with temporal stabilisation, read and write video files."""

from keras_colorize.video.colorize import VideoResult, colorize_video, frame_colorizer
from keras_colorize.video.flow import FlowEstimator, consistent_flow_mask, warp, warping_error
from keras_colorize.video.io import DEFAULT_FRAME_BATCH, VIDEO_EXTENSIONS, UnreadableVideoError, VideoInfo, VideoReader, VideoWriter, read_video_info
from keras_colorize.video.stabilization import DEFAULT_STRENGTH, ChromaStabilizer, stabilizer_for

__all__ = [
    "DEFAULT_FRAME_BATCH",
    "DEFAULT_STRENGTH",
    "VIDEO_EXTENSIONS",
    "ChromaStabilizer",
    "FlowEstimator",
    "UnreadableVideoError",
    "VideoInfo",
    "VideoReader",
    "VideoResult",
    "VideoWriter",
    "colorize_video",
    "consistent_flow_mask",
    "frame_colorizer",
    "read_video_info",
    "stabilizer_for",
    "warp",
    "warping_error",
]
