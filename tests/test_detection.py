"""Object detection for instance-aware colorization, with a tiny keras-hub RetinaNet whose
output is known (every anchor is a "person" scoring sigmoid(6)), on the current backend:
boxes mapped back to the photo, the box file of `keras-colorize detect` (format,
resuming, bad input), `colorize --detector` and the `instances.detector` recipe key."""

import json
import math
import re
import shutil

import numpy as np
import pytest
import yaml

from keras_colorize.data import read_boxes
from keras_colorize.detection import (
    DetectorError,
    PhotoDetector,
    completed_box_file,
    detect_box_file,
    letterbox,
    photo_keys,
)
from tests.detectors import anchors_xyxy, constant_detector
from tests.test_case import assert_one_line_error, invoke_cli
from tests.test_instance_stages import tiny_recipe, write_recipe

SCORE = 1.0 / (1.0 + math.exp(-6.0))


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detector") / "tiny_retinanet"
    constant_detector().save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory, photo_paths):
    """Three sample photos, one in a sub-folder, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    shutil.copy(photo_paths[0], folder / photo_paths[0].name)
    shutil.copy(photo_paths[1], folder / photo_paths[1].name)
    shutil.copy(photo_paths[2], folder / "sub" / photo_paths[2].name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def expected_boxes(detector, shape):
    """Every anchor mapped back to a photo of `shape` and clipped to it: (N, 4) corners."""
    height, width = shape
    _, scale, top, left = letterbox(np.zeros((height, width, 3), np.uint8), detector.image_size)
    corners = (anchors_xyxy(detector.detector, detector.image_size) - [left, top, left, top]) / scale
    corners[:, [0, 2]] = corners[:, [0, 2]].clip(0, width)
    corners[:, [1, 3]] = corners[:, [1, 3]].clip(0, height)
    return corners


def test_boxes_are_anchors_in_the_photos_pixels(preset):
    detector = PhotoDetector(preset, batch_size=2)
    assert detector.image_size == (128, 128)
    assert detector.detector.prediction_decoder.confidence_threshold == 0.5  # lowered from the preset's 0.9
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((200, 300, 3), (90, 60, 3), (128, 128, 3))]
    results = detector.detect(photos)
    assert len(results) == 3
    for photo, detections in zip(photos, results):
        assert 1 <= len(detections) <= 10  # the decoder's max_detections, less those in the padding
        candidates = expected_boxes(detector, photo.shape[:2])
        for detection in detections:
            box = detection.box
            corners = np.array([box.x, box.y, box.x + box.width, box.y + box.height])
            assert np.abs(candidates - corners).max(axis=1).min() < 1e-3
            assert detection.category == "person" and detection.category_id == 1
            assert box.score == pytest.approx(SCORE, abs=1e-5)
            assert 0 <= box.x and box.x + box.width <= photo.shape[1] + 1e-6
    assert [d.box for d in detector.detect([photos[0]])[0]] == detector.boxes(photos[0])


def test_scores_and_classes_select_boxes(preset):
    photo = np.full((64, 64, 3), 128, np.uint8)
    assert PhotoDetector(preset, min_score=0.999).detect([photo]) == [[]]
    assert PhotoDetector(preset, classes=["dog"]).detect([photo]) == [[]]
    assert len(PhotoDetector(preset, classes=["Person"]).detect([photo])[0]) == 10  # square: no padding
    with pytest.raises(DetectorError, match=r"unknown class 'persn' \(did you mean 'person'\?"):
        PhotoDetector(preset, classes=["persn"])
    with pytest.raises(DetectorError, match=r"min_score must be in \[0, 1\]"):
        PhotoDetector(preset, min_score=1.5)
    with pytest.raises(DetectorError, match=r"no_such_folder/: detector preset folder not found"):
        PhotoDetector("no_such_folder/")


def test_detect_writes_a_resumable_box_file(preset, photos, tmp_path):
    output = tmp_path / "boxes.json"
    result = invoke_cli("detect", photos, "-o", output, "--detector", preset, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable" in result.output
    data = json.loads(output.read_text())
    assert f"detected {len(data['annotations'])} boxes in 3 photos" in result.output
    names = sorted(image["file_name"] for image in data["images"])
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.*") if p.name != "broken.jpg")
    assert names == files
    assert data["info"]["detector"] == str(preset) and data["info"]["min_score"] == 0.5
    annotation = data["annotations"][0]
    assert set(annotation) == {"id", "image_id", "bbox", "score", "category_id", "category"}
    assert annotation["category"] == "person" and annotation["score"] == pytest.approx(SCORE, abs=1e-4)
    # The file is the box file the toolkit reads, keyed by the path in the input folder.
    boxes = read_boxes(output)
    nested = next(photos.glob("sub/*"))
    image = next(i for i in data["images"] if i["file_name"] == f"sub/{nested.name}")
    found = boxes.for_image(nested, root=photos)
    assert len(found) == sum(a["image_id"] == image["id"] for a in data["annotations"]) >= 1
    candidates = expected_boxes(PhotoDetector(preset), (image["height"], image["width"]))
    for box in found:
        corners = np.array([box.x, box.y, box.x + box.width, box.y + box.height])
        assert np.abs(candidates - corners).max(axis=1).min() < 0.02  # rounded to 0.01 px

    # An interrupted run (one photo missing) resumes; a finished one detects nothing.
    total = len(data["annotations"])
    data["images"] = data["images"][:-1]
    kept = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in kept]
    output.write_text(json.dumps(data))
    result = invoke_cli("detect", photos, "-o", output, "--detector", preset)
    assert result.exit_code == 0, result.output
    assert re.search(r"detected \d+ boxes in 1 photos", result.output) and "(2 already in it)" in result.output
    again = json.loads(output.read_text())
    assert sorted(i["file_name"] for i in again["images"]) == files
    assert len({a["id"] for a in again["annotations"]}) == len(again["annotations"]) == total
    result = invoke_cli("detect", photos, "-o", output, "--detector", preset)
    assert "detected 0 boxes in 0 photos" in result.output and "(3 already in it)" in result.output

    # Other settings are refused on resume, accepted with --overwrite.
    result = invoke_cli("detect", photos, "-o", output, "--detector", preset, "--min-score", "0.9")
    assert_one_line_error(result, "written with min_score 0.5, not 0.9", "--overwrite")
    result = invoke_cli("detect", photos, "-o", output, "--detector", preset, "--classes", "dog", "--overwrite")
    assert result.exit_code == 0, result.output
    fresh = json.loads(output.read_text())
    assert len(fresh["images"]) == 3 and fresh["annotations"] == [] and fresh["info"]["classes"] == ["dog"]


def test_an_interrupted_detection_keeps_what_it_found(preset, photos, tmp_path):
    detector = PhotoDetector(preset, batch_size=1)
    calls = []
    detect = detector.detect

    def interrupted_after_one_photo(images):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return detect(images)

    detector.detect = interrupted_after_one_photo
    output = tmp_path / "boxes.json"
    with pytest.raises(KeyboardInterrupt):
        detect_box_file(detector, photo_keys([photos]), output, preset=str(preset), progress=False)
    assert len(json.loads(output.read_text())["images"]) == 1
    readable = [pair for pair in photo_keys([photos]) if pair[1] != "broken.jpg"]
    assert completed_box_file(output, readable, preset, 0.5) is None  # two photos still to detect
    detector.detect = detect
    counts = detect_box_file(detector, photo_keys([photos]), output, preset=str(preset), progress=False)
    assert counts["resumed"] == 1 and counts["photos"] == 2 and counts["skipped"] == 1
    assert len(json.loads(output.read_text())["images"]) == 3
    # A finished file needs no detector; other settings or another photo do.
    assert completed_box_file(output, readable, preset, 0.5) == {"photos": 0, "resumed": 3, "skipped": 0, "boxes": 0}
    assert completed_box_file(output, readable, preset, 0.7) is None
    assert completed_box_file(output, readable, preset, 0.5, classes=["person"]) is None
    assert completed_box_file(output, readable + [(photos / "new.jpg", "new.jpg")], preset, 0.5) is None


def test_detect_refuses_bad_input_in_one_line(preset, photos, tmp_path):
    output = tmp_path / "boxes.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (("detect", photos, "-o", output), "--detector PRESET is required"),
        (("detect", "-o", output, "--detector", preset), "no PHOTOS given"),
        (("detect", tmp_path / "missing", "-o", output, "--detector", preset), "missing: no such file or folder"),
        (("detect", empty, "-o", output, "--detector", preset), "no image files found"),
        (("detect", photos, "-o", tmp_path, "--detector", preset), "is a folder"),
        (("detect", photos, "-o", output, "--detector", tmp_path / "nothing"), "detector preset folder not found"),
        (("detect", photos, "-o", output, "--detector", empty), "cannot load the detector preset"),
        (("detect", photos, "-o", output, "--detector", preset, "--classes", "persn"), "did you mean 'person'"),
        (("detect", photos, "-o", output, "--detector", preset, "--classes", ","), "--classes"),
    ]
    for args, message in cases:
        assert_one_line_error(invoke_cli(*args), message)
    assert not output.exists()
    output.write_text("[1, 2")
    assert_one_line_error(invoke_cli("detect", photos, "-o", output, "--detector", preset), "not a readable box file")
    assert output.read_text() == "[1, 2"  # the user's file is left as it was


def test_instance_recipe_detects_once_and_colorizes_in_one_pass(preset, photo_paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own_preset = shutil.copytree(preset, tmp_path / "detector")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths:
        shutil.copy(path, photos / path.name)
    recipe = tiny_recipe(photos)
    recipe["instances"] = {"detector": str(own_preset), "instance_size": 32, "max_instances": 3}
    path = write_recipe(tmp_path, recipe)
    run_dir = tmp_path / "run"
    result = invoke_cli("fit", path, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    boxes_file = run_dir / "boxes" / "train.json"
    assert f"{len(photo_paths)} photos detected now" in result.output
    assert len(json.loads(boxes_file.read_text())["images"]) == len(photo_paths)
    for stage in ("instance", "fusion"):
        stage_recipe = yaml.safe_load((run_dir / stage / "recipe.yaml").read_text())
        assert stage_recipe["instances"]["boxes"] == str(boxes_file) and "detector" not in stage_recipe["instances"]
    assert "instances kept" in result.output

    # Resuming reuses the detected boxes, without loading the detector (gone now).
    shutil.rmtree(own_preset)
    before = boxes_file.read_bytes()
    result = invoke_cli("fit", path, "--run-dir", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert "0 photos detected now" in result.output and result.output.count("already trained") == 3
    assert boxes_file.read_bytes() == before

    # The fusion checkpoint detects and colorizes each photo in one pass.
    checkpoint = run_dir / "fusion" / "checkpoints" / "best.keras"
    result = invoke_cli("colorize", checkpoint, photos, "--detector", preset, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"colorized {len(photo_paths)} images" in result.output
    assert f"({len(photo_paths)} with instance boxes)" in result.output
    result = invoke_cli("colorize", checkpoint, photos, "--detector", preset, "--boxes", boxes_file, "-o", tmp_path / "x")
    assert_one_line_error(result, "--boxes and --detector cannot be combined")
    full = run_dir / "full" / "checkpoints" / "best.keras"
    result = invoke_cli("colorize", full, photos, "--detector", preset, "-o", tmp_path / "x")
    assert_one_line_error(result, "--detector needs an instance-aware checkpoint")


def test_instance_recipe_takes_boxes_or_a_detector(preset):
    from keras_colorize.recipes import RecipeError, load_recipe

    recipe = tiny_recipe("samples")
    both = {**recipe, "instances": {**recipe["instances"], "detector": str(preset)}}
    with pytest.raises(RecipeError, match=r"instances.detector: set either instances.boxes .* not both"):
        load_recipe(both)
    neither = {**recipe, "instances": {"max_instances": 2}}
    with pytest.raises(RecipeError, match=r"instances.boxes: required key is missing \(or instances.detector"):
        load_recipe(neither)
    detected = {**recipe, "instances": {"detector": str(preset), "validation_boxes": "v.json"}}
    with pytest.raises(RecipeError, match=r"instances.validation_boxes: instances.detector finds the validation"):
        load_recipe(detected)
