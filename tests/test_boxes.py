"""Tests of keras_colorize.data.boxes: reading box sources written in tmp_path, and instance selection
on a real photo."""

import json
import math

import numpy as np
import pytest
from PIL import Image
from tests.data_helpers import photo

from keras_colorize.data import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MIN_SCORE,
    DEFAULT_MIN_VARIANCE,
    Box,
    InstanceBoxes,
    InstanceBoxesError,
    read_boxes,
    select_instances,
)
from keras_colorize.data.boxes import scale_boxes
from keras_colorize.errors import UserInputError

# Regions of skimage's astronaut.png (512 x 512), as (x, y, width, height).
FLAG = (0, 0, 96, 260)  # red and white stripes: high variance
FACE = (150, 10, 160, 150)
SHUTTLE = (355, 0, 110, 290)
BACKDROP = (288, 128, 64, 64)  # the plain grey studio backdrop: variance about 18


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def luma(image):
    """ITU-R 601 luma on the 0-255 scale, computed directly (not with Pillow)."""
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def one_line_error(error_type, match, function, *args):
    with pytest.raises(error_type, match=match) as info:
        function(*args)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut.png")


# ------------------------------------------------------------------ reading


def test_defaults():
    assert (DEFAULT_MIN_SCORE, DEFAULT_MIN_VARIANCE, DEFAULT_MAX_INSTANCES) == (0.99, 2000.0, 8)
    box = Box(1.5, 2.0, 3.0, 4.0)
    assert box.score == 1.0 and box.corners == (1.5, 2.0, 4.5, 6.0)
    with pytest.raises(AttributeError):
        box.x = 3.0  # frozen


def test_read_coco_layout(tmp_path):
    data = {
        "images": [
            {"id": 1, "file_name": "cat.jpg", "width": 451, "height": 300},
            {"id": 2, "file_name": "people/astronaut.png"},
            {"id": 3, "file_name": "empty.jpg"},
        ],
        "annotations": [
            {"image_id": 1, "bbox": [140, 20, 160, 150], "category_id": 17},  # ground truth: no score
            {"image_id": 2, "bbox": [0.5, 1.5, 96, 260], "score": 0.995},
            {"image_id": 2, "bbox": [150, 10, 160, 150], "score": 0.42},
            {"image_id": 2, "bbox": [150, 10, 160], "score": 0.9},  # three numbers
            {"image_id": 2, "bbox": [150, 10, 0, 20], "score": 0.9},  # zero width
            {"image_id": 2, "bbox": [150, 10, 16, -2], "score": 0.9},  # negative height
            {"image_id": 2, "bbox": [150, "10", 16, 20], "score": 0.9},  # a string
            {"image_id": 1, "bbox": [10, 10, 16, 20], "score": "high"},  # score not a number
            {"image_id": 9, "bbox": [10, 10, 16, 20], "score": 0.9},  # unknown image
        ],
    }
    boxes = read_boxes(write_json(tmp_path / "instances.json", data))
    assert isinstance(boxes, InstanceBoxes) and read_boxes(boxes) is boxes
    assert len(boxes) == 3 and list(boxes) == ["cat.jpg", "people/astronaut.png", "empty.jpg"]
    assert boxes.num_boxes == 3
    assert boxes.skipped == {"malformed": 5, "unknown image_id": 1}
    assert boxes.summary == (
        "instances.json: 3 boxes for 3 images, 6 entries skipped (5 malformed, 1 unknown image_id)"
    )
    assert boxes.for_image(tmp_path / "photos" / "cat.jpg") == [Box(140.0, 20.0, 160.0, 150.0, 1.0)]
    astronaut_boxes = boxes.for_image(tmp_path / "photos" / "people" / "astronaut.png", root=tmp_path / "photos")
    assert astronaut_boxes == [Box(0.5, 1.5, 96.0, 260.0, 0.995), Box(150.0, 10.0, 160.0, 150.0, 0.42)]
    assert boxes.for_image("empty.jpg") == [] and boxes.for_image("elsewhere/unknown.jpg") == []


def test_read_detection_list_relative_paths_and_names(tmp_path):
    detections = [
        {"file_name": "a/x.jpg", "bbox": [1, 2, 30, 40], "score": 0.999},
        {"file_name": "b/x.jpg", "bbox": [5, 6, 70, 80], "score": 0.991},
        {"file_name": "b/x.jpg", "bbox": [9, 9, 9, 9], "score": 0.5},
        {"file_name": "y.jpg", "bbox": [0, 0, 10, 10], "score": 1},
        {"bbox": [0, 0, 10, 10], "score": 1},  # no file name
        {"file_name": "y.jpg", "bbox": [0, 0, 10, float("inf")], "score": 1},
    ]
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(detections).replace("Infinity", "1e999"))  # 1e999 parses to inf
    boxes = read_boxes(path)
    assert boxes.summary == "detections.json: 4 boxes for 3 images, 2 malformed entries skipped"
    root = tmp_path / "photos"
    # By the path relative to the root first ...
    assert boxes.for_image(root / "a" / "x.jpg", root=root) == [Box(1, 2, 30, 40, 0.999)]
    assert [b.score for b in boxes.for_image(root / "b" / "x.jpg", root=root)] == [0.991, 0.5]
    # ... then by file name, here unique.
    assert boxes.for_image(root / "deeper" / "y.jpg", root=root) == [Box(0, 0, 10, 10, 1.0)]
    assert boxes.for_image("y.jpg") == [Box(0, 0, 10, 10, 1.0)]
    # x.jpg appears under two paths: its bare name cannot choose.
    message = one_line_error(InstanceBoxesError, "x.jpg", boxes.for_image, root / "c" / "x.jpg", root)
    assert "'a/x.jpg'" in message and "'b/x.jpg'" in message and "detections.json" in message
    assert isinstance(InstanceBoxesError("m"), UserInputError)


def test_read_folder_of_json_and_npz(tmp_path):
    folder = tmp_path / "boxes"
    write_json(folder / "cat.json", [{"bbox": [10, 20, 30, 40], "score": 0.995}, {"bbox": [1, 2, 3]}])
    write_json(folder / "sub" / "astronaut.json", {"boxes": [[0, 0, 96, 260], [150, 10, 160, 150]],
                                                   "scores": [0.999, 0.992]})
    write_json(folder / "no_scores.json", {"boxes": [[1, 1, 5, 5]]})
    corners = np.array([[355, 0, 465, 290], [20, 30, 10, 50], [1, 2, 3, 4]], np.float32)  # 2nd: x_max < x_min
    np.savez(folder / "rocket.npz", bbox=corners, scores=np.array([0.998, 0.999, 0.25], np.float32))
    np.savez(folder / "nothing.npz", bbox=np.zeros((0, 4)), scores=np.zeros((0,)))
    (folder / "readme.txt").write_text("ignored")

    boxes = read_boxes(folder)
    assert sorted(boxes) == ["cat", "no_scores", "nothing", "rocket", "sub/astronaut"]
    assert boxes.summary == "boxes: 6 boxes for 5 images, 2 malformed entries skipped"
    root = tmp_path / "photos"
    assert boxes.for_image(root / "cat.jpg", root=root) == [Box(10, 20, 30, 40, 0.995)]
    # Matched by relative path without the extension, then by stem.
    assert boxes.for_image(root / "sub" / "astronaut.png", root=root) == [
        Box(0, 0, 96, 260, 0.999),
        Box(150, 10, 160, 150, 0.992),
    ]
    assert len(boxes.for_image(root / "other" / "astronaut.png", root=root)) == 2
    assert boxes.for_image(root / "no_scores.png") == [Box(1, 1, 5, 5, 1.0)]
    rocket = boxes.for_image("rocket.jpg")
    assert [(b.x, b.y, b.width, b.height) for b in rocket] == [(355, 0, 110, 290), (1, 2, 2, 2)]
    assert rocket[0].score == pytest.approx(0.998) and rocket[1].score == pytest.approx(0.25)
    assert boxes.for_image("nothing.png") == [] and boxes.for_image("rocket_2.jpg") == []


def test_read_single_npz_file(tmp_path):
    np.savez(tmp_path / "chelsea.npz", bbox=np.array([[140.0, 20.0, 300.0, 170.0]]), scores=np.array([0.9991]))
    boxes = read_boxes(tmp_path / "chelsea.npz")
    assert list(boxes) == ["chelsea"]
    (box,) = boxes.for_image("photos/chelsea.png")
    assert (box.x, box.y, box.width, box.height) == (140, 20, 160, 150)


def test_read_errors_are_one_line_and_name_the_source(tmp_path):
    missing = tmp_path / "missing.json"
    one_line_error(InstanceBoxesError, r"missing\.json: boxes file or folder not found", read_boxes, missing)
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"file_name": "a.jpg",\n   "bbox": [1, 2, 3, 4],,\n  }\n]')
    one_line_error(InstanceBoxesError, r"bad\.json: invalid JSON at line 3", read_boxes, bad)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    one_line_error(InstanceBoxesError, r"binary\.json: invalid JSON", read_boxes, binary)
    for name, data in [("number.json", 42), ("object.json", {"boxes": "none"})]:
        path = write_json(tmp_path / name, data)
        one_line_error(InstanceBoxesError, rf"{name}: not a boxes file", read_boxes, path)
    coco_results = write_json(tmp_path / "results.json", [{"image_id": 1, "bbox": [1, 2, 3, 4], "score": 1}])
    one_line_error(InstanceBoxesError, r"results\.json: .*'file_name'.*'images' list", read_boxes, coco_results)
    coco = write_json(tmp_path / "coco.json", {"images": {"id": 1}, "annotations": []})
    one_line_error(InstanceBoxesError, r"coco\.json: .*'images' and 'annotations' lists", read_boxes, coco)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("no boxes here")
    one_line_error(InstanceBoxesError, r"empty_folder: no per-image boxes files", read_boxes, empty)
    folder = tmp_path / "folder"
    write_json(folder / "a.json", {"detections": []})
    one_line_error(InstanceBoxesError, r"a\.json: not a per-image boxes file", read_boxes, folder)
    write_json(folder / "a.json", {"boxes": [[1, 2, 3, 4]], "scores": [0.5, 0.6]})
    one_line_error(InstanceBoxesError, r"a\.json: 'scores' must be a list as long as 'boxes'", read_boxes, folder)
    np.savez(tmp_path / "wrong.npz", boxes=np.zeros((1, 4)))
    wrong = tmp_path / "wrong.npz"
    one_line_error(InstanceBoxesError, r"wrong\.npz: no 'bbox' array \(found boxes\)", read_boxes, wrong)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    one_line_error(InstanceBoxesError, r"broken\.npz: cannot read", read_boxes, tmp_path / "broken.npz")
    one_line_error(InstanceBoxesError, "boxes must be a file or folder path", read_boxes, 3)


# ---------------------------------------------------------------- selection


def test_select_instances_every_reason(astronaut):
    boxes = [
        Box(*FACE, score=0.995),
        Box(math.nan, 0, 10, 10, 0.999),  # malformed
        Box(10, 10, 0, 10, 0.999),  # malformed: zero width
        Box(600, 10, 20, 20, 0.999),  # outside
        Box(-40, -40, 30, 30, 0.999),  # outside (ends before the image)
        Box(511.5, 100, 30, 30, 0.999),  # clipped to half a pixel wide: outside
        Box(*SHUTTLE, score=0.5),  # low score
        Box(*BACKDROP, score=0.999),  # low variance
        Box(-20, -5, 116, 265, score=0.997),  # the flag, clipped
        Box(*SHUTTLE, score=0.999),
        Box(120, 290, 240, 250, score=0.992),  # the suit, clipped at the bottom
    ]
    corners, counts = select_instances(boxes, astronaut)
    assert counts == {"malformed": 2, "outside": 3, "low score": 1, "low variance": 1, "clipped": 3}
    assert corners.dtype == np.float32 and corners.shape == (4, 4)
    np.testing.assert_array_equal(
        corners,
        [
            [355, 0, 465, 290],  # score 0.999
            [0, 0, 96, 260],  # 0.997, clipped
            [150, 10, 310, 160],  # 0.995
            [120, 290, 360, 512],  # 0.992, clipped
        ],
    )
    corners, counts = select_instances(boxes, astronaut, max_instances=2)
    assert counts["over max_instances"] == 2
    np.testing.assert_array_equal(corners, [[355, 0, 465, 290], [0, 0, 96, 260]])
    # A lower score threshold lets the second shuttle box in; equal scores keep their order.
    corners, counts = select_instances(boxes + [Box(*FACE, score=0.5)], astronaut, min_score=0.5)
    assert "low score" not in counts and len(corners) == 6
    np.testing.assert_array_equal(corners[-2:], [[355, 0, 465, 290], [150, 10, 310, 160]])
    corners, counts = select_instances(boxes, astronaut, max_instances=0)
    assert corners.shape == (0, 4) and counts["over max_instances"] == 4
    corners, counts = select_instances([], astronaut)
    assert corners.shape == (0, 4) and counts == {}


@pytest.mark.parametrize("region", [FLAG, FACE, BACKDROP, (10.4, 20.6, 33.2, 40.5)])
def test_select_instances_variance_is_luma_variance(astronaut, region):
    x, y, width, height = region
    pixels = astronaut[math.floor(y) : math.ceil(y + height), math.floor(x) : math.ceil(x + width)]
    variance = float(np.var(luma(pixels.astype(np.float64))))
    box = [Box(*region, score=1.0)]
    # Pillow's integer luma rounds each pixel: allow a little room either side.
    kept, counts = select_instances(box, astronaut, min_variance=max(0.0, variance - 2.0))
    assert len(kept) == 1 and counts == {}
    kept, counts = select_instances(box, astronaut, min_variance=variance + 2.0)
    assert len(kept) == 0 and counts == {"low variance": 1}
    # A gray image at the same resolution selects the same way.
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert len(select_instances(box, gray, min_variance=max(0.0, variance - 2.0))[0]) == 1
    assert len(select_instances(box, gray, min_variance=variance + 2.0)[0]) == 0


def test_select_instances_default_variance_on_real_photo(astronaut):
    regions = {"flag": FLAG, "face": FACE, "shuttle": SHUTTLE, "backdrop": BACKDROP}
    kept = {
        name: len(select_instances([Box(*r, score=1.0)], astronaut)[0]) == 1 for name, r in regions.items()
    }
    assert kept == {"flag": True, "face": True, "shuttle": True, "backdrop": False}


def test_scale_boxes_follows_a_resize(astronaut):
    (scaled,) = scale_boxes([Box(*FACE, score=0.995)], 0.25, 0.5)
    assert scaled == Box(37.5, 5.0, 40.0, 75.0, 0.995)
    half = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.Resampling.BICUBIC))
    corners, _ = select_instances(scale_boxes([Box(*FLAG), Box(*BACKDROP)], 0.5), half)
    np.testing.assert_array_equal(corners, [[0, 0, 48, 130]])


def test_select_instances_bad_arguments(astronaut):
    box = [Box(*FACE)]
    one_line_error(UserInputError, r"min_score must be a number in \[0, 1\], got 1\.5", select_instances,
                   box, astronaut, 1.5)
    one_line_error(UserInputError, "min_variance must be a number >= 0", select_instances, box, astronaut, 0.5, -1)
    one_line_error(UserInputError, "max_instances must be an integer >= 0, got 2.5", select_instances,
                   box, astronaut, 0.5, 0, 2.5)
    one_line_error(UserInputError, "max_instances must be an integer >= 0, got True", select_instances,
                   box, astronaut, 0.5, 0, True)
    one_line_error(UserInputError, r"uint8 image of shape \(H, W, 3\) or \(H, W\), got float64",
                   select_instances, box, astronaut / 255.0)
    one_line_error(UserInputError, r"got uint8 \(512, 512, 4\)", select_instances, box,
                   np.zeros((512, 512, 4), np.uint8))
