"""validate_gguf must turn every bad file into a specific one-line ModelError, quickly and safely."""

from __future__ import annotations

import os
import random
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGUFEndian, GGUFValueType
from gguf_fixtures import (
    gemma3_270m_path,
    key_value_offset,
    patch_bytes,
    patch_header_counts,
    tensor_info_fields,
    truncated_copy,
    write_gguf,
    write_raw,
    write_tiny_clip,
    write_tiny_llama,
)

from model_io.errors import ModelError, ModelFileError, UnsupportedModelError
from model_io.gguf_check import GgufSummary, validate_gguf


def expect_error(path: Path, error: type[ModelError], *fragments: str, expect: str = "any") -> str:
    """Validate ``path``, require ``error`` with a one-line message naming the file and each fragment."""
    with pytest.raises(error) as caught:
        validate_gguf(path, expect=expect)  # type: ignore[arg-type]
    message = str(caught.value)
    assert path.name in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


@pytest.fixture
def llama(tmp_path: Path) -> Path:
    return write_tiny_llama(tmp_path / "tiny-llama.gguf")


# --- files that are fine --------------------------------------------------------------------------


def test_valid_text_model_summary(llama: Path) -> None:
    summary = validate_gguf(llama, expect="text")
    assert isinstance(summary, GgufSummary)
    assert summary.path == llama
    assert summary.file_size == llama.stat().st_size
    assert (summary.version, summary.architecture, summary.n_tensors) == (3, "llama", 4)
    assert not summary.is_projector
    assert summary.kv["general.name"] == "Tiny Llama"
    assert summary.kv["llama.context_length"] == 128
    assert "tokenizer.ggml.tokens" not in summary.kv  # arrays are not materialised...
    assert summary.array_lengths["tokenizer.ggml.tokens"] == 160  # ...only counted
    by_name = {tensor.name: tensor for tensor in summary.tensors}
    embd = by_name["token_embd.weight"]
    assert (embd.type_name, embd.shape, embd.n_elements, embd.n_bytes) == ("Q8_0", (32, 160), 5120, 160 * 34)
    assert by_name["blk.0.attn_q.weight"][1:5] == ("F32", (32, 32), 1024, 4096)
    assert all(tensor.offset % summary.alignment == 0 for tensor in summary.tensors)


def test_tensor_table_matches_gguf_reader(llama: Path) -> None:
    """Our fast walker and gguf-py's reference reader must agree on every tensor and scalar."""
    summary = validate_gguf(llama)
    reader = GGUFReader(llama)
    expected = [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), t.n_elements, t.n_bytes, t.data_offset)
        for t in reader.tensors
    ]
    assert [tuple(tensor) for tensor in summary.tensors] == expected
    assert summary.data_offset == reader.data_offset
    assert summary.kv["general.name"] == reader.fields["general.name"].contents()


def test_projector_accepted_as_mmproj(tmp_path: Path) -> None:
    summary = validate_gguf(write_tiny_clip(tmp_path / "mmproj-tiny.gguf"), expect="mmproj")
    assert summary.architecture == "clip"
    assert summary.is_projector
    assert summary.kv["clip.has_vision_encoder"] is True


def test_accepts_str_path(llama: Path) -> None:
    assert validate_gguf(str(llama)).architecture == "llama"


def test_rejects_bad_expect_argument(llama: Path) -> None:
    with pytest.raises(ValueError, match="expect"):
        validate_gguf(llama, expect="vision")  # type: ignore[arg-type]


# --- not a usable file at all ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nowhere.gguf", ModelFileError, "not found")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "model-folder.gguf"
    folder.mkdir()
    expect_error(folder, ModelFileError, "folder")


def test_empty_file(tmp_path: Path) -> None:
    expect_error(write_raw(tmp_path / "empty.gguf", b""), ModelFileError, "empty")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions, non-root")
def test_unreadable_file(llama: Path) -> None:
    llama.chmod(0)
    try:
        expect_error(llama, ModelFileError, "permission denied")
    finally:
        llama.chmod(0o644)


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (bytes(random.Random(1).randrange(256) for _ in range(4096)), "instead of 'GGUF'"),
        (struct.pack("<Q", 120) + b'{"__metadata__": {"format": "pt"}}' + bytes(100), "safetensors"),
        (b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "HTML"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
        (b"PK\x03\x04" + bytes(60), "PyTorch"),
        (b"tjgg" + bytes(60), "GGML"),
        (b'{"error": "Repository not found"}', "JSON"),
    ],
    ids=["random", "safetensors", "html", "lfs-pointer", "zip", "ggjt", "json"],
)
def test_not_gguf(tmp_path: Path, content: bytes, hint: str) -> None:
    expect_error(write_raw(tmp_path / "download.gguf", content), ModelFileError, "not a GGUF", hint)


@pytest.mark.parametrize("size", [2, 4, 12, 23])
def test_truncated_fixed_header(llama: Path, tmp_path: Path, size: int) -> None:
    cut = truncated_copy(llama, tmp_path / "cut-header.gguf", size)
    expect_error(cut, ModelFileError, "truncated")


# --- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "fragment"), [(1, "version 1"), (4, "version 4"), (999, "version 999")])
def test_unsupported_version(llama: Path, version: int, fragment: str) -> None:
    patch_bytes(llama, 4, struct.pack("<I", version))
    expect_error(llama, UnsupportedModelError, fragment)


def test_version_zero_is_corrupt(llama: Path) -> None:
    patch_bytes(llama, 4, struct.pack("<I", 0))
    expect_error(llama, ModelFileError, "version is 0")


def test_big_endian_file(tmp_path: Path) -> None:
    path = tmp_path / "big-endian.gguf"
    writer = GGUFWriter(path, "llama", endianess=GGUFEndian.BIG)
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    expect_error(path, UnsupportedModelError, "big-endian")


# --- corrupt counts and lengths: must fail fast, never allocate or loop ----------------------------


@pytest.mark.parametrize(
    ("n_tensors", "n_kv"),
    [(10**12, None), (None, 10**12), (2**64 - 1, 2**64 - 1)],
    ids=["tensors", "kv", "max"],
)
def test_absurd_header_counts(llama: Path, n_tensors: int | None, n_kv: int | None) -> None:
    patch_header_counts(llama, n_tensors=n_tensors, n_kv=n_kv)
    started = time.perf_counter()
    expect_error(llama, ModelFileError, "header claims", "corrupt")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("key", ["test.bytes", "tokenizer.ggml.scores", "tokenizer.ggml.tokens"])
def test_absurd_array_length(tmp_path: Path, key: str) -> None:
    """gguf-py's GGUFReader spins (and grows memory) forever on a huge uint8 array; we reject it at once."""

    def configure(writer: GGUFWriter) -> None:
        writer.add_token_list(["a", "b"])
        writer.add_token_scores([0.0, 0.0])
        writer.add_key_value("test.bytes", [1, 2, 3], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT8)

    path = write_gguf(tmp_path / "huge-array.gguf", "llama", {"w": np.ones(32, dtype=np.float32)}, configure)
    patch_bytes(path, key_value_offset(path, key) + 4 + 4, struct.pack("<Q", 10**12))  # skip both type ids
    started = time.perf_counter()
    expect_error(path, ModelFileError, key, "1,000,000,000,000 elements")
    assert time.perf_counter() - started < 1.0


def test_absurd_string_length(llama: Path) -> None:
    length_at = key_value_offset(llama, "general.name") + 4
    patch_bytes(llama, length_at, struct.pack("<Q", 2**40))
    expect_error(llama, ModelFileError, "general.name", "corrupt")


def test_string_running_past_end(llama: Path) -> None:
    length_at = key_value_offset(llama, "general.name") + 4
    patch_bytes(llama, length_at, struct.pack("<Q", 10**8))
    expect_error(llama, ModelFileError, "truncated", "general.name")


# --- truncated downloads ---------------------------------------------------------------------------


def test_truncated_in_metadata(llama: Path, tmp_path: Path) -> None:
    cut_at = key_value_offset(llama, "tokenizer.ggml.tokens") + 40
    cut = truncated_copy(llama, tmp_path / "cut-metadata.gguf", cut_at)
    expect_error(cut, ModelFileError, "truncated", "tokenizer.ggml.tokens")


def test_truncated_in_tensor_data_reports_missing_bytes(llama: Path, tmp_path: Path) -> None:
    summary = validate_gguf(llama)
    data_end = max(tensor.offset + tensor.n_bytes for tensor in summary.tensors)
    cut_size = data_end - 1000
    cut = truncated_copy(llama, tmp_path / "cut-data.gguf", cut_size)
    expect_error(cut, ModelFileError, "truncated", "1,000 bytes missing", f"{data_end:,} bytes")


def test_every_truncation_point_is_a_model_file_error(llama: Path, tmp_path: Path) -> None:
    """Cutting the file anywhere must give ModelFileError, never a raw parser exception."""
    data = llama.read_bytes()
    summary = validate_gguf(llama)
    data_end = max(t.offset + t.n_bytes for t in summary.tensors)
    target = tmp_path / "cut.gguf"
    for size in [*range(1, summary.data_offset + 1), *range(summary.data_offset, data_end, 37)]:
        target.write_bytes(data[:size])
        with pytest.raises(ModelFileError, match=r"cut\.gguf"):
            validate_gguf(target)


def test_random_header_corruption_never_escapes(llama: Path, tmp_path: Path) -> None:
    """Flipped header bytes either still parse or raise a ModelError; nothing else, nothing slow."""
    data = bytearray(llama.read_bytes())
    header_end = validate_gguf(llama).data_offset
    rng = random.Random(1234)
    target = tmp_path / "fuzzed.gguf"
    started = time.perf_counter()
    for _ in range(400):
        corrupted = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            corrupted[rng.randrange(header_end)] = rng.randrange(256)
        target.write_bytes(corrupted)
        try:
            validate_gguf(target)
        except ModelError as exc:
            assert "fuzzed.gguf" in str(exc) and "\n" not in str(exc)
    assert time.perf_counter() - started < 30


# --- malformed tensor table ------------------------------------------------------------------------


def test_tensor_offset_not_aligned(llama: Path) -> None:
    fields = tensor_info_fields(llama, "blk.0.attn_q.weight")
    patch_bytes(llama, fields["offset"], struct.pack("<Q", 128 + 4))
    expect_error(llama, ModelFileError, "blk.0.attn_q.weight", "not aligned to 32 bytes")


def test_tensor_offsets_overlapping(llama: Path) -> None:
    fields = tensor_info_fields(llama, "blk.0.attn_norm.weight")
    patch_bytes(llama, fields["offset"], struct.pack("<Q", 0))
    expect_error(llama, ModelFileError, "blk.0.attn_norm.weight", "overlap or are out of order")


def test_tensor_extends_past_end_of_file(llama: Path) -> None:
    """A shape bigger than the data present reads as a short file, with the gap quantified."""
    summary = validate_gguf(llama)
    embd = next(t for t in summary.tensors if t.name == "token_embd.weight")
    assert embd == summary.tensors[-1]
    dims_at = tensor_info_fields(llama, "token_embd.weight")["n_dims"] + 4
    patch_bytes(llama, dims_at + 8, struct.pack("<Q", 16_000))  # rows: 160 -> 16,000
    missing = embd.offset + 16_000 * 34 - summary.file_size
    expect_error(llama, ModelFileError, "truncated", f"({missing:,} bytes missing)")


def test_unknown_tensor_type(llama: Path) -> None:
    patch_bytes(llama, tensor_info_fields(llama, "output_norm.weight")["type"], struct.pack("<I", 77))
    expect_error(llama, UnsupportedModelError, "output_norm.weight", "ggml type 77")


def test_garbage_tensor_type(llama: Path) -> None:
    patch_bytes(llama, tensor_info_fields(llama, "output_norm.weight")["type"], struct.pack("<I", 0xDEADBEEF))
    expect_error(llama, ModelFileError, "output_norm.weight", "invalid ggml type")


def test_too_many_dimensions(llama: Path) -> None:
    patch_bytes(llama, tensor_info_fields(llama, "output_norm.weight")["n_dims"], struct.pack("<I", 9))
    expect_error(llama, ModelFileError, "output_norm.weight", "9 dimensions")


def test_row_not_multiple_of_block(llama: Path) -> None:
    dims_at = tensor_info_fields(llama, "token_embd.weight")["n_dims"] + 4
    patch_bytes(llama, dims_at, struct.pack("<Q", 33))
    expect_error(llama, ModelFileError, "token_embd.weight", "block size 32")


def test_duplicate_tensor_name(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "dup-tensors.gguf",
        "llama",
        {
            "blk.0.aaaa.weight": np.ones(32, dtype=np.float32),
            "blk.0.bbbb.weight": np.ones(32, dtype=np.float32),
        },
    )
    patch_bytes(path, path.read_bytes().find(b"blk.0.bbbb.weight"), b"blk.0.aaaa.weight")
    expect_error(path, ModelFileError, "'blk.0.aaaa.weight' appears twice")


# --- malformed metadata ----------------------------------------------------------------------------


def test_duplicate_metadata_key(tmp_path: Path) -> None:
    def configure(writer: GGUFWriter) -> None:
        writer.add_uint32("test.aaaa", 1)
        writer.add_uint32("test.bbbb", 2)

    path = write_gguf(tmp_path / "dup-keys.gguf", "llama", {"w": np.ones(32, dtype=np.float32)}, configure)
    patch_bytes(path, path.read_bytes().find(b"test.bbbb"), b"test.aaaa")
    expect_error(path, ModelFileError, "'test.aaaa' appears twice")


def test_unknown_value_type(llama: Path) -> None:
    patch_bytes(llama, key_value_offset(llama, "llama.context_length"), struct.pack("<I", 42))
    expect_error(llama, ModelFileError, "llama.context_length", "unknown value type 42")


def test_bad_alignment(tmp_path: Path) -> None:
    def configure(writer: GGUFWriter) -> None:
        writer.add_uint32("general.alignment", 32)

    path = write_gguf(tmp_path / "align.gguf", "llama", {"w": np.ones(32, dtype=np.float32)}, configure)
    patch_bytes(path, key_value_offset(path, "general.alignment") + 4, struct.pack("<I", 48))
    expect_error(path, ModelFileError, "general.alignment is 48", "power of two")


def test_missing_architecture(llama: Path) -> None:
    patch_bytes(llama, llama.read_bytes().find(b"general.architecture"), b"general.architectura")
    expect_error(llama, ModelFileError, "no general.architecture")


@pytest.mark.parametrize("as_array", [False, True], ids=["uint32", "array"])
def test_architecture_not_a_string(tmp_path: Path, as_array: bool) -> None:
    def configure(writer: GGUFWriter) -> None:
        if as_array:
            writer.add_key_value("general.architecture", ["llama"], GGUFValueType.ARRAY, GGUFValueType.STRING)
        else:
            writer.add_key_value("general.architecture", 7, GGUFValueType.UINT32)

    path = write_gguf(tmp_path / "arch-int.gguf", "llama", {"w": np.ones(32, dtype=np.float32)}, configure)
    expect_error(path, ModelFileError, "general.architecture is not a string")


def test_unknown_architecture(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "frob.gguf", "frobnicator", {"w": np.ones(32, dtype=np.float32)})
    expect_error(path, UnsupportedModelError, "'frobnicator'", "not supported")


def test_no_tensors(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "vocab-only.gguf", "llama", {})
    expect_error(path, UnsupportedModelError, "no tensors")


# --- text model vs projector -----------------------------------------------------------------------


def test_projector_given_as_text_model(tmp_path: Path) -> None:
    clip = write_tiny_clip(tmp_path / "mmproj-model-f16.gguf")
    expect_error(clip, UnsupportedModelError, "vision/audio projector", "mmproj", expect="text")


def test_text_model_given_as_projector(llama: Path) -> None:
    expect_error(
        llama,
        UnsupportedModelError,
        "'llama' language model",
        "not a vision/audio projector",
        expect="mmproj",
    )


# --- the real thing --------------------------------------------------------------------------------


def test_real_gemma3_270m() -> None:
    path = gemma3_270m_path()
    started = time.perf_counter()
    summary = validate_gguf(path, expect="text")
    elapsed = time.perf_counter() - started
    assert summary.architecture == "gemma3"
    assert summary.n_tensors == len(summary.tensors) == 236
    assert summary.array_lengths["tokenizer.ggml.tokens"] == 262144
    assert summary.file_size == path.stat().st_size
    assert elapsed < 2.0, f"validation took {elapsed:.2f}s"
