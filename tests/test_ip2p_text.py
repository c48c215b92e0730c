"""CLIP tokenizer and text encoder: parity with transformers and KerasCV, converters, serialization."""

import gzip
import json

import keras
import numpy as np
import pytest

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.convert.text_weights import (
    text_encoder_from_diffusers,
    text_encoder_from_keras_cv,
)
from keras_colorize.models.instruct_pix2pix.text import (
    TINY_TEXT_ENCODER,
    VOCABULARY_PATH,
    CLIPTextEncoder,
    CLIPTokenizer,
)
from tests.test_case import run_model_saving_test, run_serialization_test, to_numpy

SD_PARAMETERS = 123_060_480

# Casing, punctuation, contractions, numbers, accents (composed), emoji, CJK,
# extra whitespace, a word repeated past the length limit, the empty prompt.
PROMPTS = [
    "colorize the image",
    "a photo of a cat",
    "Colorize the IMAGE!!  Vivid, warm colours...",
    "  extra   \t spaces\n\nhere ",
    "don't you'll I'm we've they're she'd it's",
    "café naïve Ünïcödé façade",
    "emoji 😀🎨 👍🏽 ❤️",
    "1234 5.67 $89 100% #1",
    "日本語のテキスト",
    "a (b) [c] {d} <e> \"f\" 'g' -h- _i_ /j\\",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    " ".join(["photograph"] * 100),
    "",
]


def _clip_vocabulary(merges):
    """CLIP's vocabulary from its merges: 256 byte symbols, the same with </w>, merges, specials."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    symbols = [chr(code) for code in codes]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    return tokens + ["<|startoftext|>", "<|endoftext|>"]


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer()


@pytest.fixture(scope="module")
def transformers_tokenizer_dir(tmp_path_factory):
    """vocab.json + merges.txt derived from the packaged .gz (a diffusers `tokenizer/` folder)."""
    folder = tmp_path_factory.mktemp("clip_tokenizer")
    lines = gzip.decompress(VOCABULARY_PATH.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    vocabulary = _clip_vocabulary(merges)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocabulary)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_exact_ids(tokenizer):
    assert tokenizer.vocabulary_size == 49408
    assert (tokenizer.start_token, tokenizer.end_token) == (49406, 49407)
    assert tokenizer.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    ids = tokenizer(["", "a photo of a cat"])
    assert ids.dtype == np.int32 and ids.shape == (2, 77)
    np.testing.assert_array_equal(ids[0], [49406] + [49407] * 76)
    np.testing.assert_array_equal(ids[1, :8], [49406, 320, 1125, 539, 320, 2368, 49407, 49407])
    assert tokenizer("a photo of a cat").shape == (1, 77)


def test_tokenizer_matches_transformers(tokenizer, transformers_tokenizer_dir):
    transformers = pytest.importorskip("transformers", reason="transformers is the reference tokenizer")
    reference = transformers.CLIPTokenizer.from_pretrained(str(transformers_tokenizer_dir))
    # transformers normalises to NFC like CLIP's ftfy cleanup: a decomposed accent too.
    prompts = PROMPTS + ["cafe\u0301 de\u0301cor"]
    expected = reference(prompts, padding="max_length", max_length=77, truncation=True)["input_ids"]
    np.testing.assert_array_equal(tokenizer(prompts), np.asarray(expected))


def test_tokenizer_matches_keras_cv(tokenizer):
    keras_cv_tokenizer = pytest.importorskip(
        "keras_cv.src.models.stable_diffusion.clip_tokenizer", reason="keras-cv is the reference tokenizer"
    )
    reference = keras_cv_tokenizer.SimpleTokenizer(bpe_path=str(VOCABULARY_PATH))
    # KerasCV undoes HTML entities as CLIP does.
    for prompt in PROMPTS + ["rock &amp; roll &lt;3", "&quot;quoted&quot;"]:
        expected = reference.encode(prompt)
        assert tokenizer.encode(prompt) == expected, prompt
        if len(expected) > 77:
            expected = expected[:76] + [49407]
        expected = expected + [49407] * (77 - len(expected))
        np.testing.assert_array_equal(tokenizer(prompt)[0], expected)


def test_tokenizer_truncation_and_cleanup(tokenizer):
    long = tokenizer(" ".join(["photograph"] * 100))[0]
    assert long[0] == 49406 and long[-1] == 49407 and len(set(long[1:-1].tolist())) == 1
    assert tokenizer.encode("cafe\u0301") == tokenizer.encode("café")
    assert tokenizer.encode("Rock &amp; Roll") == tokenizer.encode("rock & roll")
    assert tokenizer.encode("  a \t\n b ") == tokenizer.encode("a b")
    assert tokenizer.decode(tokenizer.encode("Colorize the image!")) == "colorize the image !"
    short = CLIPTokenizer(sequence_length=8)
    np.testing.assert_array_equal(short("a photo of a cat on a sofa"), [[49406, 320, 1125, 539, 320, 2368, 525, 49407]])


def test_tokenizer_reads_a_plain_merges_file(tokenizer, transformers_tokenizer_dir):
    plain = CLIPTokenizer(transformers_tokenizer_dir / "merges.txt")
    np.testing.assert_array_equal(plain(PROMPTS), tokenizer(PROMPTS))
    clone = CLIPTokenizer.from_config(json.loads(json.dumps(plain.get_config())))
    assert clone.get_config() == plain.get_config()


def test_tokenizer_bad_vocabulary(tmp_path):
    missing = tmp_path / "nope.txt.gz"
    with pytest.raises(UserInputError, match="nope.txt.gz") as error:
        CLIPTokenizer(missing)
    assert "\n" not in str(error.value)
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(UserInputError, match="broken.txt.gz"):
        CLIPTokenizer(broken)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("header\na b c\n")
    with pytest.raises(UserInputError, match="line 2"):
        CLIPTokenizer(wrong)
    with pytest.raises(UserInputError, match="prompt"):
        CLIPTokenizer()([1, 2])


# ---------------------------------------------------------------- text encoder


def _randomize_torch(model, seed, scale):
    """Replace every parameter with N(0, scale), layer-norm scales with 1 + N(0, scale)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * scale
            parameter.copy_(noise + 1.0 if "layer_norm" in name and name.endswith("weight") else noise)


def _transformers_encoder(seed, **config):
    torch = pytest.importorskip("torch", reason="transformers' CLIPTextModel is the reference")
    transformers = pytest.importorskip("transformers", reason="transformers' CLIPTextModel is the reference")
    config = transformers.CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        attn_implementation="eager",
        **config,
    )
    torch.manual_seed(seed)
    model = transformers.CLIPTextModel(config).eval()
    _randomize_torch(model, seed, scale=0.2 if config.hidden_size < 100 else 0.05)
    state_dict = {name.removeprefix("text_model."): t.numpy() for name, t in model.state_dict().items()}
    return model, state_dict


def _transformers_states(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.as_tensor(ids, dtype=torch.long)).last_hidden_state.numpy()


def test_tiny_text_encoder_matches_transformers(tokenizer):
    reference, state_dict = _transformers_encoder(
        0,
        hidden_size=TINY_TEXT_ENCODER["width"],
        num_hidden_layers=TINY_TEXT_ENCODER["depth"],
        num_attention_heads=TINY_TEXT_ENCODER["heads"],
        intermediate_size=TINY_TEXT_ENCODER["intermediate_size"],
    )
    state_dict["embeddings.position_ids"] = np.arange(77)[None]  # a buffer, not a weight
    encoder = text_encoder_from_diffusers(CLIPTextEncoder(**TINY_TEXT_ENCODER), state_dict)
    ids = tokenizer(["colorize the image", "a photo of a cat", "Vivid, warm colours!"])
    ours = to_numpy(encoder(ids))
    # The published checkpoints (diffusers `text_encoder/`) name the tensors `text_model.*`.
    published = {f"text_model.{name}": value for name, value in state_dict.items()}
    again = text_encoder_from_diffusers(CLIPTextEncoder(**TINY_TEXT_ENCODER), published)
    np.testing.assert_array_equal(to_numpy(again(ids)), ours)
    # Half-precision checkpoints are cast to the variables' dtype.
    half = {name: value.astype(np.float16) for name, value in state_dict.items()}
    text_encoder_from_diffusers(again, half)
    fc1 = again.get_layer("encoder_layer_1").fc1.kernel
    np.testing.assert_array_equal(to_numpy(fc1), half["encoder.layers.1.mlp.fc1.weight"].T.astype(np.float32))
    assert ours.shape == (3, 77, 32)
    expected = _transformers_states(reference, ids)
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    # Shorter sequences use the first positions (the causal mask makes the prefix equal).
    np.testing.assert_allclose(to_numpy(encoder(ids[:, :16])), expected[:, :16], atol=1e-4, rtol=0)
    with pytest.raises(UserInputError, match="78 tokens are more than the text encoder's 77 positions"):
        encoder(np.zeros((1, 78), "int32"))


def test_diffusers_converter_errors():
    _, state_dict = _transformers_encoder(
        1, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    state_dict = {f"text_model.{name}": value for name, value in state_dict.items()}
    encoder = CLIPTextEncoder(**TINY_TEXT_ENCODER)
    before = [to_numpy(w) for w in encoder.weights]

    missing = dict(state_dict)
    del missing["text_model.encoder.layers.1.mlp.fc2.bias"]
    with pytest.raises(UserInputError, match=r"missing tensor text_model\.encoder\.layers\.1\.mlp\.fc2\.bias"):
        text_encoder_from_diffusers(encoder, missing)

    wrong = dict(state_dict)
    wrong["text_model.encoder.layers.0.self_attn.q_proj.weight"] = np.zeros((32, 16), "float32")
    with pytest.raises(UserInputError, match=r"q_proj\.weight has shape \(32, 16\), expected \(32, 32\)"):
        text_encoder_from_diffusers(encoder, wrong)

    extra = dict(state_dict, **{"text_projection.weight": np.zeros((32, 32), "float32")})
    with pytest.raises(UserInputError, match=r"text_projection\.weight"):
        text_encoder_from_diffusers(encoder, extra)

    for weight, value in zip(encoder.weights, before):
        np.testing.assert_array_equal(to_numpy(weight), value)

    deeper = CLIPTextEncoder(**dict(TINY_TEXT_ENCODER, depth=3))
    with pytest.raises(UserInputError, match=r"missing tensor text_model\.encoder\.layers\.2\."):
        text_encoder_from_diffusers(deeper, state_dict)


def test_text_encoder_serialization(tmp_path, tokenizer):
    encoder = CLIPTextEncoder(**TINY_TEXT_ENCODER)
    clone = run_serialization_test(encoder)
    assert clone.count_params() == encoder.count_params()
    run_model_saving_test(encoder, tokenizer(["colorize the image", ""]), tmp_path / "text_encoder.keras")
    half = CLIPTextEncoder(dtype="bfloat16", **TINY_TEXT_ENCODER)
    restored = run_serialization_test(half)
    assert keras.backend.standardize_dtype(restored(tokenizer("x")).dtype) == "bfloat16"


def test_text_encoder_parameter_count():
    encoder = CLIPTextEncoder()
    assert encoder.count_params() == SD_PARAMETERS
    assert encoder.output_shape == (None, None, 768)


def _write_legacy_h5(model, path):
    """What KerasCV downloads: Keras-2 `save_weights("x.h5")` (layer_names / weight_names)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


@pytest.mark.slow
def test_sd_text_encoder_matches_keras_cv(tmp_path, tokenizer):
    text_encoder = pytest.importorskip(
        "keras_cv.src.models.stable_diffusion.text_encoder", reason="keras-cv's TextEncoder is the reference"
    )
    reference = text_encoder.TextEncoder(77, download_weights=False)
    encoder = CLIPTextEncoder()
    assert [tuple(w.shape) for w in encoder.weights] == [tuple(w.shape) for w in reference.weights]
    assert reference.count_params() == SD_PARAMETERS

    rng = np.random.default_rng(0)
    for weight in reference.weights:
        noise = rng.standard_normal(weight.shape, dtype=np.float32) * 0.05
        weight.assign(noise + 1.0 if weight.path.endswith("gamma") else noise)
    path = tmp_path / "kcv_encoder.h5"
    _write_legacy_h5(reference, path)
    loaded = text_encoder.TextEncoder(77, download_weights=False)
    loaded.load_weights(str(path))  # KerasCV reads the file the way it reads its download

    text_encoder_from_keras_cv(encoder, path)
    ids = tokenizer(["colorize the image", "a photo of a cat"])
    positions = np.tile(np.arange(77, dtype="int32"), (2, 1))
    expected = to_numpy(reference([ids, positions]))
    np.testing.assert_array_equal(to_numpy(loaded([ids, positions])), expected)
    np.testing.assert_allclose(to_numpy(encoder(ids)), expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_sd_text_encoder_matches_transformers(tokenizer):
    reference, state_dict = _transformers_encoder(
        2, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    )
    encoder = text_encoder_from_diffusers(CLIPTextEncoder(), state_dict)
    ids = tokenizer(["colorize the image", "a photo of a cat"])
    np.testing.assert_allclose(to_numpy(encoder(ids)), _transformers_states(reference, ids), atol=1e-4, rtol=0)


def test_keras_cv_converter_errors(tmp_path):
    encoder = CLIPTextEncoder(**TINY_TEXT_ENCODER)
    with pytest.raises(UserInputError, match="missing.h5"):
        text_encoder_from_keras_cv(encoder, tmp_path / "missing.h5")
    other = CLIPTextEncoder(**dict(TINY_TEXT_ENCODER, depth=1))
    _write_legacy_h5(other, tmp_path / "shallow.h5")
    with pytest.raises(UserInputError, match=r"holds 20 weights, \w+ has 36"):
        text_encoder_from_keras_cv(encoder, tmp_path / "shallow.h5")
    wider = CLIPTextEncoder(**dict(TINY_TEXT_ENCODER, intermediate_size=32))
    _write_legacy_h5(wider, tmp_path / "wider.h5")
    with pytest.raises(UserInputError, match=r"shape \(32, 32\).*fc1/kernel has \(32, 64\)"):
        text_encoder_from_keras_cv(encoder, tmp_path / "wider.h5")

    source = CLIPTextEncoder(**TINY_TEXT_ENCODER)
    for weight in source.weights:
        weight.assign(np.random.default_rng(3).normal(size=weight.shape).astype("float32"))
    _write_legacy_h5(source, tmp_path / "tiny.h5")
    text_encoder_from_keras_cv(encoder, tmp_path / "tiny.h5")
    for mine, theirs in zip(encoder.weights, source.weights):
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(theirs))
