"""Colorizer presets: writing and loading folders, the pretrained-encoder omission, the built-in model."""

import json

import h5py
import numpy as np
import pytest

from keras_colorize import Colorizer
from keras_colorize.colorizer import ab_output
from keras_colorize.loading import load_colorizer
from keras_colorize.errors import UserInputError
from keras_colorize.metrics import colorfulness
from keras_colorize.models import BackboneUNet
from keras_colorize.presets import DEFAULT_PRESET, list_presets, read_weights
from tests.test_backbone_unet import TINY_DECODER, tiny_resnet_unet
from tests.test_case import assert_one_line_error, invoke_cli, run_in_backend, to_numpy


@pytest.fixture
def vgg16_cache(lpips_weights_dir, monkeypatch):
    """The weights cache holds the converted ImageNet VGG16 (as `vgg16_weights_path` writes it)."""
    from keras_colorize.metrics.weights import convert_vgg16_weights

    convert_vgg16_weights(lpips_weights_dir / "vgg16_imagenet.npz")
    monkeypatch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(lpips_weights_dir))
    return lpips_weights_dir


def _ab(colorizer, images):
    return to_numpy(ab_output(colorizer(images, training=False)))


def test_preset_round_trip_stores_every_variable(tmp_path, photos_64):
    colorizer = Colorizer(tiny_resnet_unet(), image_size=64)
    colorizer.compile(loss="ab_classification")
    colorizer.fit(photos_64[:4], batch_size=2, epochs=1, verbose=0)
    folder = colorizer.save_to_preset(tmp_path / "exact", metadata={"trained_on": "four photos"}, weights_dtype="float32")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metadata.json", "model.weights.h5"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["format"] == "keras-colorize-preset" and metadata["trained_on"] == "four photos"
    assert metadata["encoder_weights"] is None and metadata["parameter_count"] == colorizer.generator.count_params()
    assert set(read_weights(folder / "model.weights.h5")) == {v.path for v in colorizer.generator.variables}
    loaded = Colorizer.from_preset(folder)
    np.testing.assert_array_equal(_ab(loaded, photos_64[:2]), _ab(colorizer, photos_64[:2]))
    half = Colorizer.from_preset(colorizer.save_to_preset(tmp_path / "half"))
    np.testing.assert_allclose(_ab(half, photos_64[:2]), _ab(colorizer, photos_64[:2]), atol=2e-3)
    with pytest.raises(UserInputError, match="already exists"):
        colorizer.save_to_preset(tmp_path / "half")
    colorizer.save_to_preset(tmp_path / "half", overwrite=True)
    assert isinstance(load_colorizer(tmp_path / "half"), Colorizer)


def test_lora_vgg16_preset_leaves_out_the_imagenet_kernels(vgg16_cache, tmp_path, photos_64):
    generator = BackboneUNet("vgg16", encoder_weights="imagenet", encoder_lora_rank=2, **TINY_DECODER)
    colorizer = Colorizer(generator, image_size=64)
    colorizer.compile(loss="ab_classification")
    colorizer.fit(photos_64[:2], batch_size=2, epochs=1, verbose=0)  # adapters and biases move
    colorizer.save(tmp_path / "lora.keras")  # checkpoints keep the adapters apart from the kernels
    colorizer = load_colorizer(tmp_path / "lora.keras")
    folder = colorizer.save_to_preset(tmp_path / "lora", weights_dtype="float32")
    stored = read_weights(folder / "model.weights.h5")
    assert "conv1_1/kernel" not in stored and "conv1_1/lora_kernel_a" in stored and "conv1_1/bias" in stored
    assert json.loads((folder / "metadata.json").read_text())["encoder_weights"] == "imagenet"
    assert (folder / "model.weights.h5").stat().st_size < 3_000_000  # not the 59 MB of the kernels
    np.testing.assert_allclose(_ab(Colorizer.from_preset(folder), photos_64[:2]), _ab(colorizer, photos_64[:2]), atol=1e-5)


def test_preset_errors(tmp_path, photos_64):
    with pytest.raises(UserInputError, match="not a preset") as error:
        Colorizer.from_preset(tmp_path / "nothing")
    assert "\n" not in str(error.value)
    folder = Colorizer(tiny_resnet_unet(), image_size=64).save_to_preset(tmp_path / "preset")
    with h5py.File(folder / "model.weights.h5", "a") as handle:
        del handle["ab_logits/kernel"]
    with pytest.raises(UserInputError, match="no value for ab_logits/kernel"):
        Colorizer.from_preset(folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "format_version": 99}))
    with pytest.raises(UserInputError, match="format version"):
        Colorizer.from_preset(folder)


def test_the_builtin_preset_is_listed_and_small():
    from keras_colorize.presets import BUILTIN_PRESETS_DIR

    assert DEFAULT_PRESET in list_presets()
    folder = BUILTIN_PRESETS_DIR / DEFAULT_PRESET
    total = sum(path.stat().st_size for path in folder.iterdir())
    assert total <= 25_000_000
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["encoder_weights"] == "imagenet" and metadata["weights_dtype"] == "float16"
    assert {"trained_on", "recipe", "evaluation"} <= set(metadata)


def test_the_builtin_model_colorizes_an_odd_size_photo_in_a_fresh_process(lpips_weights_dir, tmp_path, photo_paths):
    import keras

    result = run_in_backend(
        keras.backend.backend(),
        f"""
        import numpy as np
        from keras_colorize import Colorizer, load_image
        from keras_colorize.metrics import colorfulness
        photo = load_image({str(photo_paths[1])!r})[:297, :413]
        colorized = Colorizer.from_preset({DEFAULT_PRESET!r}).colorize(photo)
        assert colorized.shape == (297, 413, 3) and colorized.dtype == np.uint8
        np.save({str(tmp_path / 'out.npy')!r}, colorized)
        print(float(colorfulness(colorized[None] / 255.0)[0]))
        """,
        timeout=600,
    )
    assert float(result) > 10.0  # colour, not gray (a gray photo scores 0)


# ----------------------------------------------------------------------------- command line


def test_command_line_takes_presets_where_it_takes_checkpoints(tmp_path, photo_paths):
    import yaml

    colorizer = Colorizer(tiny_resnet_unet(), image_size=64)
    colorizer.build()
    checkpoint = tmp_path / "run" / "checkpoints" / "best.keras"
    checkpoint.parent.mkdir(parents=True)
    colorizer.save(checkpoint)
    (tmp_path / "run" / "recipe.yaml").write_text(
        yaml.safe_dump({"model": {"name": "BackboneUNet"}, "data": {"train": "samples", "holdout_fraction": 0.25}})
    )
    (tmp_path / "figures.yaml").write_text("trained_on: nothing\nevaluation: {lpips: 0.1}\n")
    result = invoke_cli(
        "export", checkpoint, tmp_path / "preset", "--format", "preset", "--metadata", tmp_path / "figures.yaml"
    )
    assert result.exit_code == 0, result.output
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["trained_on"] == "nothing" and metadata["evaluation"] == {"lpips": 0.1}
    assert metadata["recipe"]["data"]["holdout_fraction"] == 0.25 and metadata["source"] == str(checkpoint)

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths[:2]:
        (photos / path.name).write_bytes(path.read_bytes())
    result = invoke_cli("colorize", tmp_path / "preset", photos, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in photo_paths[:2])

    result = invoke_cli(
        "evaluate", tmp_path / "preset", "--data", "holdout", "--size", "64", "--metrics", "psnr", "-o", tmp_path / "ev"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert summary["num_images"] == 2  # a quarter of the eight sample photos, set aside by the recipe
    assert summary["models"]["model"]["sha256"]

    colorizer.save(tmp_path / "loose.keras")  # no run directory, so no recipe
    failed = invoke_cli("evaluate", tmp_path / "loose.keras", "--data", "holdout", "-o", tmp_path / "x")
    assert_one_line_error(failed, "--data holdout", "data.holdout_fraction")
    assert_one_line_error(invoke_cli("export", tmp_path / "nothing.keras", tmp_path / "y"), "checkpoint not found")
    assert_one_line_error(
        invoke_cli("export", checkpoint, tmp_path / "z", "--metadata", tmp_path / "figures.yaml"), "--format preset"
    )


def test_colorize_without_a_checkpoint_uses_the_builtin_model(lpips_weights_dir, tmp_path, photo_paths, monkeypatch):
    monkeypatch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(tmp_path / "cache"))  # converted on first use
    from PIL import Image

    from tests.test_video import decode, write_clip

    frames = np.stack([np.asarray(Image.open(photo_paths[2]).convert("RGB"))[i : i + 64, i : i + 96] for i in range(4)])
    film = write_clip(tmp_path / "film.webm", frames, audio_codec=None)
    result = invoke_cli("colorize", photo_paths[2], film, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "colorized 1 image and 1 video" in result.stdout
    colorized_film = decode(tmp_path / "out" / "film.webm")["frames"]
    assert colorized_film.shape == frames.shape
    assert float(np.mean(to_numpy(colorfulness(colorized_film / 255.0)))) > 10.0
    from keras_colorize.data import load_image

    colorized = load_image(tmp_path / "out" / photo_paths[2].name)
    assert colorized.shape == load_image(photo_paths[2]).shape
    assert float(colorfulness(colorized[None] / 255.0)[0]) > 10.0
    assert (tmp_path / "cache" / "vgg16_imagenet.npz").is_file()
