"""The web app (`keras-colorize app`), served by the command in its own process and used
as a user would: through Gradio's Python client, and in headless Chromium (Playwright
driving the system's Chromium)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import keras
from keras_colorize import Colorizer
from keras_colorize.models import UNetV2
from tests.test_case import assert_one_line_error, chromium, invoke_cli
from tests.test_video import decode, write_clip

# Where the browser test also writes its screenshot, when set (the docs' picture of the app).
SCREENSHOT_VARIABLE = "KERAS_COLORIZE_APP_SCREENSHOT"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small colorizer (image size 32) saved as a checkpoint, and the same model in this process."""
    keras.utils.set_random_seed(5)
    colorizer = Colorizer(UNetV2(encoder_filters=(8, 16, 16), decoder_filters=(16, 8)), image_size=32)
    colorizer.build()
    path = tmp_path_factory.mktemp("app_model") / "colorizer.keras"
    colorizer.save(path)
    return path, colorizer


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    """`keras-colorize app CHECKPOINT --port P`, run from an empty folder with its own temporary folder."""
    root = tmp_path_factory.mktemp("app_run")
    workdir, temporary = root / "cwd", root / "tmp"
    workdir.mkdir()
    temporary.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(temporary), GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_TEMP_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_colorize.cli", "app", str(model[0]), "--port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the app did not start: {process.stdout.read()[-3000:]}")
        time.sleep(1)
    yield {"url": url, "workdir": workdir, "temporary": temporary, "process": process}
    if process.poll() is None:
        process.kill()


@pytest.fixture(scope="module")
def photo(photo_paths, tmp_path_factory):
    """A real colour photo at an odd size (301x201), as a PNG file."""
    path = tmp_path_factory.mktemp("app_photo") / "coffee.png"
    Image.open(photo_paths[2]).convert("RGB").resize((301, 201), Image.Resampling.LANCZOS).save(path)
    return path


def client(served):
    from gradio_client import Client

    return Client(served["url"], verbose=False)


def test_a_photo_comes_back_colorized_at_full_resolution(served, model, photo):
    from gradio_client import handle_file

    image = np.asarray(Image.open(photo))
    for size in (32, 64, 128):  # its own, one the page does not list, one it does
        slider, download = client(served).predict(
            handle_file(photo), size, "", 20, 7.0, 1.5, 0, api_name="/colorize_photo"
        )  # fmt: skip
        result = np.asarray(Image.open(download["value"] if isinstance(download, dict) else download))
        expected = model[1].colorize(image, image_size=size)
        assert result.shape == image.shape
        assert np.abs(result.astype("int16") - expected).max() <= 1
        before, after = (Image.open(item) for item in slider)
        assert before.size == after.size == (301, 201)


def test_bad_uploads_get_clear_messages(served, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("not a photo")
    truncated = tmp_path / "cut.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg", quality=95)
    whole = (tmp_path / "whole.jpg").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 8000)).save(huge)
    expected = {
        text: "notes.png: not an image",
        truncated: "cut.jpg: cannot decode",
        huge: "huge.png: 9000x8000 is more than 60 megapixels",
    }
    for path, message in expected.items():
        with pytest.raises(AppError) as raised:
            client(served).predict(handle_file(path), 32, "", 20, 7.0, 1.5, 0, api_name="/colorize_photo")
        assert message in str(raised.value), str(raised.value)
        assert "\n" not in str(raised.value).strip()
    good = tmp_path / "good.png"
    Image.fromarray(noise).save(good)
    with pytest.raises(AppError, match=r"image_size \(30, 30\) must be divisible by"):
        client(served).predict(handle_file(good), 30, "", 20, 7.0, 1.5, 0, api_name="/colorize_photo")
    with pytest.raises(AppError, match="notes.png: not a video"):
        client(served).predict(handle_file(text), True, 0.8, 32, "", 20, 7.0, 1.5, 0, api_name="/colorize_film")


def test_a_film_comes_back_colorized_with_its_audio(served, photo_paths, tmp_path):
    from gradio_client import handle_file

    from keras_colorize.video.synthetic import camera_motion_clip

    photos = [np.asarray(Image.open(path).convert("RGB")) for path in photo_paths[:2]]
    clip = camera_motion_clip(photos, frame_size=(72, 128), frames_per_shot=6)
    source = write_clip(tmp_path / "film.mov", clip.frames)
    played, download = client(served).predict(
        handle_file(source), True, 0.8, 32, "", 20, 7.0, 1.5, 0, api_name="/colorize_film"
    )  # fmt: skip
    path = Path(played["video"] if isinstance(played, dict) else played)
    assert path.suffix == ".mp4"
    got = decode(path)
    assert got["frames"].shape == clip.frames.shape
    assert got["rate"] == 25 and len(got["audio"]) == 1
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def test_the_page_colorizes_a_photo_in_a_browser(served, photo, tmp_path):
    from playwright.sync_api import sync_playwright

    binary = chromium()
    shot = tmp_path / "app.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(served["url"], wait_until="networkidle", timeout=120_000)
        assert page.title() == "keras-colorize"
        page.set_input_files("#photo-upload input[type=file]", str(photo))
        page.wait_for_timeout(1000)
        page.click("#colorize-photo")
        images = page.locator("#before-after img")
        page.wait_for_function(
            "() => { const i = document.querySelectorAll('#before-after img');"
            " return i.length >= 2 && Array.from(i).every(x => x.complete && x.naturalWidth > 0); }",
            timeout=120_000,
        )
        sizes = images.evaluate_all("(items) => items.map(i => [i.naturalWidth, i.naturalHeight])")
        assert all(size == [301, 201] for size in sizes), sizes
        assert page.get_by_text("Download the colorized photo").is_visible()
        page.screenshot(path=str(shot), full_page=True)
        slider = np.asarray(Image.open(__import__("io").BytesIO(page.locator("#before-after").screenshot())).convert("RGB"))
        browser.close()
    assert slider.std() > 10  # the photo is drawn, not an empty frame
    if os.environ.get(SCREENSHOT_VARIABLE):
        shutil.copyfile(shot, os.environ[SCREENSHOT_VARIABLE])


def test_the_app_command_refuses_bad_arguments(model, tmp_path):
    assert_one_line_error(invoke_cli("app", tmp_path / "missing.keras"), "missing.keras: checkpoint not found")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = invoke_cli("app", model[0], "--port", busy.getsockname()[1])
    assert_one_line_error(result, "cannot serve on 127.0.0.1:")


def test_the_app_writes_only_into_its_temporary_folder_and_removes_it(served):
    """Runs after the other tests of the served app: stops it."""
    assert list(served["workdir"].iterdir()) == []
    folders = list(served["temporary"].iterdir())
    assert [folder.name.startswith("keras-colorize-app-") for folder in folders] == [True]
    assert any((folders[0] / "results").rglob("*_colorized.png")) and any((folders[0] / "results").rglob("*.mp4"))
    served["process"].send_signal(signal.SIGINT)
    served["process"].wait(timeout=60)
    assert list(served["temporary"].iterdir()) == []


def test_the_app_passes_its_options_to_each_kind_of_model(model, photo, tmp_path):
    """In process: the sizes offered and the settings each kind of model gets."""
    from keras_colorize.models.instruct_pix2pix.convert.preset import random_components, save_preset
    from keras_colorize.models.instruct_pix2pix.pipeline import DiffusionColorizer
    from keras_colorize.web import AppModel

    image = np.asarray(Image.open(photo))
    keras_model = AppModel(model[1], "colorizer.keras")
    assert keras_model.default_size == 32 and 32 in keras_model.sizes and 128 in keras_model.sizes
    assert keras_model.settings(128, "ignored", 5, 1.0, 1.0, 7) == {"image_size": 128}
    np.testing.assert_array_equal(keras_model.colorize(image, image_size=128), model[1].colorize(image, image_size=128))

    diffusion = DiffusionColorizer(save_preset(tmp_path / "preset", random_components(seed=0)))
    app_model = AppModel(diffusion, "preset")
    assert app_model.is_diffusion and app_model.default_size == 256
    settings = app_model.settings(32, "make it sepia", 1, 3.0, 1.2, 4)
    assert settings == {"size": 32, "prompt": "make it sepia", "steps": 1, "guidance": 3.0, "image_guidance": 1.2, "seed": 4}
    small = image[:64, :96]
    expected = diffusion.pipeline.colorize(small, size=32, prompt="make it sepia", steps=1, guidance=3.0, image_guidance=1.2, seed=4)
    np.testing.assert_array_equal(app_model.colorize(small, **settings), expected)
    frames = app_model.frame_colorizer(**settings)
    assert not hasattr(frames, "colorize_batch")  # sampled frame by frame
    np.testing.assert_array_equal(frames.colorize(small), expected)
