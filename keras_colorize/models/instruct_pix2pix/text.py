"""The CLIP text side of Stable Diffusion v1: the BPE tokenizer and the text encoder.

`CLIPTokenizer` turns prompts into token ids (plain Python over `regex`, no Keras op);
`CLIPTextEncoder` turns token ids into the text states the U-Net attends to.
The encoder's default configuration is the SD v1 text encoder (OpenAI CLIP
ViT-L/14's text transformer) with exactly the weight layout of KerasCV's
`TextEncoder`, so KerasCV's weight files and diffusers' `text_encoder/`
checkpoints convert into it (see `convert/text_weights.py`).

References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021.
"""

import functools
import gzip
import html
import os
import unicodedata
import zlib
from pathlib import Path

import keras
import numpy as np
import regex
from keras import layers, ops

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import SEQUENCE_LENGTH
from keras_colorize.serialization import register

VOCABULARY_PATH = Path(__file__).resolve().parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
"""The packaged CLIP BPE merges (OpenAI's `bpe_simple_vocab_16e6.txt.gz`)."""

MERGES = 49152 - 256 - 2
"""Merges CLIP reads from its BPE file (lines 1..48894; line 0 is a header)."""

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"

TINY_TEXT_ENCODER = dict(width=32, depth=2, heads=4, intermediate_size=64)
"""A tiny `CLIPTextEncoder` configuration for tests (the real vocabulary, so the real tokenizer works)."""

_PRETOKENIZE = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")


@functools.lru_cache(maxsize=None)
def _byte_to_unicode():
    """The reversible byte -> printable character table of byte-level BPE (GPT-2, CLIP).

    Printable Latin-1 bytes map to themselves; the other 68 bytes map, in order,
    to the characters from U+0100 on, so no byte becomes whitespace or a control
    character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def _clean(text):
    """CLIP's text cleanup: HTML entities undone (twice), Unicode NFC, whitespace runs
    collapsed to one space, stripped, lower-cased."""
    text = html.unescape(html.unescape(text))
    text = unicodedata.normalize("NFC", text)
    return _WHITESPACE.sub(" ", text).strip().lower()


def _read_merges(path):
    """The BPE merges of a CLIP vocabulary file (gzip or plain text), as (left, right) pairs."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").split("\n")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UserInputError(f"cannot read the BPE vocabulary {path}: {reason}") from None
    merges = []
    for number, line in enumerate(lines[1 : MERGES + 1], start=2):
        if not line.strip():
            break
        pair = line.split()
        if len(pair) != 2:
            raise UserInputError(f"{path}: line {number} is not a BPE merge (two symbols): {line[:40]!r}")
        merges.append(tuple(pair))
    if not merges:
        raise UserInputError(f"{path}: no BPE merges found (expected a CLIP bpe_simple_vocab file)")
    return merges


class CLIPTokenizer:
    """The CLIP byte-level BPE tokenizer, with padding and truncation to a fixed length.

    Text is cleaned as CLIP does (HTML entities undone, Unicode NFC, whitespace
    collapsed, lower-cased), split with CLIP's pattern (contractions, letter runs,
    single digits, punctuation runs), each piece's UTF-8 bytes are mapped to
    printable characters and merged by the BPE ranks, the last symbol of a word
    carrying `</w>`. The vocabulary is CLIP's: the 256 byte symbols, the same with
    `</w>`, one entry per merge, then `<|startoftext|>` (49406) and
    `<|endoftext|>` (49407).

    Args:
        vocabulary: str, path or None. A CLIP BPE merges file, gzip-compressed
            (`bpe_simple_vocab_16e6.txt.gz`) or plain (a diffusers
            `tokenizer/merges.txt`); its first line is a header. None is the
            packaged one. Defaults to None.
        sequence_length: int. Length of each row of ids, start and end tokens
            included. Defaults to SEQUENCE_LENGTH (77).

    Raises:
        UserInputError: the vocabulary file is missing, unreadable or not a BPE
            merges file.

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.text import CLIPTokenizer
        >>> tokenizer = CLIPTokenizer()
        >>> tokenizer("colorize the image").shape
        (1, 77)
        >>> tokenizer.encode("a photo")[0], tokenizer.encode("a photo")[-1]
        (49406, 49407)
    """

    def __init__(self, vocabulary=None, sequence_length=SEQUENCE_LENGTH):
        if int(sequence_length) < 2:
            raise UserInputError(f"sequence_length must be at least 2 (start and end tokens), got {sequence_length}")
        self.vocabulary = None if vocabulary is None else os.fspath(vocabulary)
        self.sequence_length = int(sequence_length)
        merges = _read_merges(VOCABULARY_PATH if vocabulary is None else vocabulary)
        symbols = list(_byte_to_unicode().values())
        tokens = symbols + [symbol + END_OF_WORD for symbol in symbols]
        tokens += ["".join(pair) for pair in merges]
        tokens += [START_OF_TEXT, END_OF_TEXT]
        self._ids = {token: index for index, token in enumerate(tokens)}
        self._tokens = tokens
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._bpe = functools.lru_cache(maxsize=2**16)(self._merge_word)

    @property
    def vocabulary_size(self):
        """Number of token ids (49408 for CLIP's vocabulary)."""
        return len(self._tokens)

    @property
    def start_token(self):
        """Id of `<|startoftext|>` (49406 for CLIP's vocabulary)."""
        return self._ids[START_OF_TEXT]

    @property
    def end_token(self):
        """Id of `<|endoftext|>` (49407 for CLIP's vocabulary); also the padding id."""
        return self._ids[END_OF_TEXT]

    def _merge_word(self, word):
        """BPE symbols of one pre-token (already byte-mapped), `</w>` on the last."""
        if word in (START_OF_TEXT, END_OF_TEXT):
            return (word,)
        symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            ranked = [(self._ranks.get(pair, MERGES + 1), pair) for pair in zip(symbols, symbols[1:])]
            rank, pair = min(ranked, key=lambda item: item[0])
            if rank > MERGES:
                break
            merged, index = [], 0
            while index < len(symbols):
                if index + 1 < len(symbols) and (symbols[index], symbols[index + 1]) == pair:
                    merged.append(symbols[index] + symbols[index + 1])
                    index += 2
                else:
                    merged.append(symbols[index])
                    index += 1
            symbols = merged
        return tuple(symbols)

    def encode(self, text):
        """Token ids of one prompt, with the start and end tokens, neither padded nor truncated.

        Args:
            text: str. The prompt.

        Returns:
            list of int: `[start_token, ..., end_token]`.
        """
        if not isinstance(text, str):
            raise UserInputError(f"a prompt must be a str, got {type(text).__name__}")
        table = _byte_to_unicode()
        ids = [self.start_token]
        for piece in _PRETOKENIZE.findall(_clean(text)):
            if piece not in (START_OF_TEXT, END_OF_TEXT):
                piece = "".join(table[byte] for byte in piece.encode("utf-8"))
            ids.extend(self._ids[symbol] for symbol in self._bpe(piece))
        ids.append(self.end_token)
        return ids

    def decode(self, ids):
        """The text of token ids (special tokens dropped, words separated by spaces).

        Args:
            ids: sequence of int. Token ids, e.g. one row of `__call__`'s output.

        Returns:
            str: the cleaned, lower-cased text the ids encode.
        """
        inverse = {char: byte for byte, char in _byte_to_unicode().items()}
        special = (self.start_token, self.end_token)
        text = "".join(self._tokens[int(i)] for i in ids if int(i) not in special)
        words = text.split(END_OF_WORD)
        decoded = [bytes(inverse[char] for char in word).decode("utf-8", errors="replace") for word in words]
        return " ".join(word for word in decoded if word)

    def __call__(self, prompts):
        """Token ids of prompts, padded with the end token and truncated to `sequence_length`.

        A prompt longer than `sequence_length` tokens keeps its first
        `sequence_length - 1` ids and ends with the end token.

        Args:
            prompts: str or sequence of str. One prompt or a batch.

        Returns:
            np.ndarray of int32, shape `(N, sequence_length)` (N = 1 for a str).
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        try:
            prompts = list(prompts)
        except TypeError:
            raise UserInputError(f"prompts must be a str or a list of str, got {type(prompts).__name__}") from None
        ids = np.full((len(prompts), self.sequence_length), self.end_token, dtype="int32")
        for row, prompt in enumerate(prompts):
            tokens = self.encode(prompt)
            if len(tokens) > self.sequence_length:
                tokens = tokens[: self.sequence_length - 1] + [self.end_token]
            ids[row, : len(tokens)] = tokens
        return ids

    def get_config(self):
        """The constructor arguments (JSON-serializable)."""
        return {"vocabulary": self.vocabulary, "sequence_length": self.sequence_length}

    @classmethod
    def from_config(cls, config):
        """A tokenizer from `get_config()`'s dict."""
        return cls(**config)


def quick_gelu(x):
    """CLIP's GELU approximation, `x * sigmoid(1.702 x)`."""
    return x * ops.sigmoid(1.702 * x)


@register
class CLIPTextEmbedding(layers.Layer):
    """Token embedding plus learned position embedding (positions 0..L-1).

    Args:
        vocabulary_size: int. Number of token ids.
        sequence_length: int. Number of position embeddings (the longest input).
        width: int. Embedding width.

    Inputs: token ids, int, shape `(N, L)`, L <= sequence_length.
    Outputs: float, shape `(N, L, width)`.
    """

    def __init__(self, vocabulary_size, sequence_length, width, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.width = width
        self.token_embedding = layers.Embedding(
            vocabulary_size, width, dtype=self.dtype_policy, name="token_embedding"
        )
        self.position_embedding = layers.Embedding(
            sequence_length, width, dtype=self.dtype_policy, name="position_embedding"
        )

    def build(self, input_shape):
        self._check_length(input_shape)
        self.token_embedding.build(input_shape)
        self.position_embedding.build((self.sequence_length,))

    def call(self, tokens):
        self._check_length(tuple(tokens.shape))
        positions = ops.arange(ops.shape(tokens)[1], dtype="int32")
        return self.token_embedding(tokens) + self.position_embedding(positions)[None]

    def _check_length(self, input_shape):
        length = input_shape[-1]
        if length is not None and length > self.sequence_length:
            raise UserInputError(
                f"{length} tokens are more than the text encoder's {self.sequence_length} positions"
            )

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape)
        return (*input_shape, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, sequence_length=self.sequence_length, width=self.width)
        return config


@register
class CLIPTextAttention(layers.Layer):
    """Causal multi-head self-attention with Dense query/key/value/output projections.

    Args:
        width: int. Model width (a multiple of `heads`).
        heads: int. Attention heads.

    Inputs: float, shape `(N, L, width)`. Outputs: float, shape `(N, L, width)`.
    """

    def __init__(self, width, heads, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        self.q_proj = layers.Dense(width, dtype=self.dtype_policy, name="q_proj")
        self.k_proj = layers.Dense(width, dtype=self.dtype_policy, name="k_proj")
        self.v_proj = layers.Dense(width, dtype=self.dtype_policy, name="v_proj")
        self.out_proj = layers.Dense(width, dtype=self.dtype_policy, name="out_proj")

    def build(self, input_shape):
        for projection in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            projection.build(input_shape)

    def call(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        split = (batch, length, self.heads, self.head_dim)
        query = ops.reshape(self.q_proj(x), split)
        key = ops.reshape(self.k_proj(x), split)
        value = ops.reshape(self.v_proj(x), split)
        attended = ops.dot_product_attention(query, key, value, scale=self.head_dim**-0.5, is_causal=True)
        return self.out_proj(ops.reshape(attended, (batch, length, self.width)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads)
        return config


@register
class CLIPTextEncoderLayer(layers.Layer):
    """One pre-norm transformer block: causal self-attention, then a quick-GELU MLP.

    Args:
        width: int. Model width.
        heads: int. Attention heads.
        intermediate_size: int. Hidden width of the MLP.

    Inputs: float, shape `(N, L, width)`. Outputs: float, shape `(N, L, width)`.
    """

    def __init__(self, width, heads, intermediate_size, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.heads = heads
        self.intermediate_size = intermediate_size
        self.layer_norm1 = layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="layer_norm1")
        self.self_attn = CLIPTextAttention(width, heads, dtype=self.dtype_policy, name="self_attn")
        self.layer_norm2 = layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="layer_norm2")
        self.fc1 = layers.Dense(intermediate_size, dtype=self.dtype_policy, name="fc1")
        self.fc2 = layers.Dense(width, dtype=self.dtype_policy, name="fc2")

    def build(self, input_shape):
        self.layer_norm1.build(input_shape)
        self.self_attn.build(input_shape)
        self.layer_norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build((*input_shape[:-1], self.intermediate_size))

    def call(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.fc2(quick_gelu(self.fc1(self.layer_norm2(x))))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads, intermediate_size=self.intermediate_size)
        return config


@register
class CLIPTextEncoder(keras.Model):
    """The CLIP text transformer of Stable Diffusion v1: token ids -> text states.

    Token plus position embeddings, `depth` pre-norm blocks of causal
    self-attention and quick-GELU MLP, a final layer norm (epsilon 1e-5). The
    default configuration (123,060,480 parameters) is OpenAI CLIP ViT-L/14's
    text model, numerically equal to transformers' `CLIPTextModel`
    (`last_hidden_state`) and with the ordered weight shapes of KerasCV's
    `TextEncoder`. The attention projections are `keras.layers.Dense` layers.

    Args:
        vocabulary_size: int. Number of token ids. Defaults to 49408.
        sequence_length: int. Number of position embeddings, the longest input.
            Defaults to 77.
        width: int. Model width. Defaults to 768.
        depth: int. Transformer blocks. Defaults to 12.
        heads: int. Attention heads (must divide `width`). Defaults to 12.
        intermediate_size: int. Hidden width of each MLP. Defaults to 3072.
        dtype: str, keras.DTypePolicy or None. Dtype policy of every layer.
            Defaults to None (the global policy).

    Inputs: token ids (`CLIPTokenizer` output), int32, shape `(N, L)`,
        L <= sequence_length.
    Outputs: the last hidden state after the final layer norm, float, shape
        `(N, L, width)`.

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.text import (
        ...     CLIPTextEncoder, CLIPTokenizer, TINY_TEXT_ENCODER)
        >>> encoder = CLIPTextEncoder(**TINY_TEXT_ENCODER)
        >>> tuple(encoder(CLIPTokenizer()(["colorize the image"])).shape)
        (1, 77, 32)
    """

    def __init__(
        self,
        vocabulary_size=49408,
        sequence_length=SEQUENCE_LENGTH,
        width=768,
        depth=12,
        heads=12,
        intermediate_size=3072,
        dtype=None,
        **kwargs,
    ):
        if width % heads:
            raise UserInputError(f"CLIPTextEncoder: width {width} is not a multiple of heads {heads}")
        name = kwargs.pop("name", None) or "clip_text_encoder"

        # === Functional model ===
        tokens = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = CLIPTextEmbedding(vocabulary_size, sequence_length, width, dtype=dtype, name="embeddings")(tokens)
        for index in range(depth):
            x = CLIPTextEncoderLayer(width, heads, intermediate_size, dtype=dtype, name=f"encoder_layer_{index}")(x)
        outputs = layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="final_layer_norm")(x)
        super().__init__(inputs=tokens, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.width = width
        self.depth = depth
        self.heads = heads
        self.intermediate_size = intermediate_size
        self.layers_dtype = dtype

    def get_config(self):
        dtype = self.layers_dtype
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": None if dtype is None else keras.dtype_policies.serialize(keras.dtype_policies.get(dtype)),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "width": self.width,
            "depth": self.depth,
            "heads": self.heads,
            "intermediate_size": self.intermediate_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
