"""Hostile GGUF files: validate_gguf and inspect_model end in a one-line ModelError, fast, in bounded memory.

Hypothesis builds GGUF headers field by field (any value type for any key, wrong payloads, duplicate
and empty keys, huge or zero counts, lengths, dimensions and offsets, tensor data past the end) and
mutates them further by truncation and byte flips.  Whatever the validator accepts is then handed to
ggml's own GGUF parser (in a child process, since a parser crash must not take the suite down): an
accepted file must never be one that llama.cpp refuses.  Real files are cut at every structure
boundary.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fuzz_support import LONG, check_user_error, fuzz_settings, linux_only, run_bounded, within
from gguf_fixtures import write_tiny_clip, write_tiny_gemma3n, write_tiny_llama
from hypothesis import given
from hypothesis import strategies as st

from model_io.errors import ModelError, ModelFileError
from model_io.gguf_check import GgufSummary, validate_gguf
from model_io.model_info import model_info_from_summary

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B"}
SCALAR_FORMATS |= {U64: "<Q", I64: "<q", F64: "<d"}
HUGE = (1 << 30, (1 << 30) + 1, (1 << 31) - 1, 1 << 32, (1 << 62), (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
BOUND_SECONDS = 5.0  # a few-KB header parses in milliseconds; this only catches hangs
LLAMA_LIB = Path(str(__import__("llama_cpp").__file__)).parent / "lib"
GGML_BASE = next(
    iter(sorted(LLAMA_LIB.glob("*ggml-base.*"))), LLAMA_LIB / "libggml-base.so"
)  # .so/.dylib/.dll


def gguf_string(data: bytes, claimed: int | None = None) -> bytes:
    return struct.pack("<Q", len(data) if claimed is None else claimed) + data


@dataclass(frozen=True)
class Tensor:
    name: bytes
    dims: tuple[int, ...]
    ggml_type: int
    offset: int | None  # None: the correct packed offset
    rank: int | None  # None: len(dims)


@dataclass(frozen=True)
class Header:
    version: int
    kvs: tuple[bytes, ...]  # encoded key/value records
    tensors: tuple[Tensor, ...]
    n_kv: int | None  # None: the true count
    n_tensors: int | None
    data_size: int | None  # None: exactly what the tensors need
    alignment: int

    def encode(self) -> bytes:
        n_kv = len(self.kvs) if self.n_kv is None else self.n_kv
        n_tensors = len(self.tensors) if self.n_tensors is None else self.n_tensors
        out = bytearray(b"GGUF" + struct.pack("<IQQ", self.version, n_tensors, n_kv))
        for kv in self.kvs:
            out += kv
        offset, needed = 0, 0
        for tensor in self.tensors:
            rank = len(tensor.dims) if tensor.rank is None else tensor.rank
            out += gguf_string(tensor.name) + struct.pack("<I", rank)
            out += b"".join(struct.pack("<Q", d) for d in tensor.dims)
            size = _tensor_bytes(tensor)
            out += struct.pack("<IQ", tensor.ggml_type, offset if tensor.offset is None else tensor.offset)
            offset += size + (-size) % self.alignment
            needed = offset
        out += bytes((-len(out)) % self.alignment)
        out += bytes(min(needed if self.data_size is None else self.data_size, 1 << 20))
        return bytes(out)


def _tensor_bytes(tensor: Tensor) -> int:
    sizes = {0: (1, 4), 1: (1, 2), 8: (32, 34), 12: (256, 144)}  # F32, F16, Q8_0, Q4_K
    block, size = sizes.get(tensor.ggml_type, (1, 4))
    elements = 1
    for d in tensor.dims:
        elements *= d
    return min(elements // block * size, 1 << 20)


# -- strategies ------------------------------------------------------------------------------------

ARCHITECTURES = (b"llama", b"gemma3n", b"clip", b"gemma3", b"no-such-arch", b"", "ll\u00e1ma".encode())
FAULTS = (
    "version", "n_kv", "n_tensors", "key_length", "key_bytes", "empty_key", "duplicate_key", "value_type",
    "wrong_payload", "string_length", "array_item_type", "array_count", "alignment", "architecture",
    "tensor_name", "duplicate_tensor", "tensor_rank", "tensor_dims", "tensor_type", "tensor_offset",
    "data_size",
)  # fmt: skip
TENSOR_NAMES = (b"token_embd.weight", b"output_norm.weight", b"blk.0.attn_q.weight", b"mm.0.weight")
dimensions = st.one_of(st.sampled_from((0, 1, 31, 32, 256, *HUGE)), st.integers(0, 96))


def record(key: bytes, value_type: int, payload: bytes, *, key_length: int | None = None) -> bytes:
    return gguf_string(key, key_length) + struct.pack("<I", value_type) + payload


def array(item_type: int, items: list[bytes], count: int | None = None) -> bytes:
    return struct.pack("<IQ", item_type, len(items) if count is None else count) + b"".join(items)


@st.composite
def metadata(draw: st.DrawFn, faults: set[str]) -> list[bytes]:
    """A sound set of key/values (architecture, name, a number, a vocabulary), then the chosen faults."""
    arch = draw(
        st.sampled_from(ARCHITECTURES if "architecture" in faults else (b"llama", b"gemma3n", b"clip"))
    )
    tokens = [gguf_string(t) for t in draw(st.lists(st.binary(max_size=6), max_size=5))]
    name_length = draw(st.sampled_from((0, 3, 64, *HUGE))) if "string_length" in faults else None
    kvs = [
        record(b"general.architecture", STRING, gguf_string(arch)),
        record(b"general.name", STRING, gguf_string(b"fuzz", name_length)),
        record(b"llama.context_length", U32, struct.pack("<I", draw(st.integers(0, (1 << 32) - 1)))),
        record(b"tokenizer.ggml.tokens", ARRAY, array(STRING, tokens)),
    ]
    if "array_item_type" in faults or "array_count" in faults:
        item_type = (
            draw(st.sampled_from((ARRAY, 13, 0xFFFFFFFF, U8, F64))) if "array_item_type" in faults else STRING
        )
        count = draw(st.sampled_from((0, 7, (1 << 22) + 1, *HUGE))) if "array_count" in faults else None
        kvs[3] = record(b"tokenizer.ggml.tokens", ARRAY, array(item_type, tokens, count))
    if "alignment" in faults:
        bad_alignments = (
            (U32, struct.pack("<I", 0)),
            (U32, struct.pack("<I", 48)),
            (U32, struct.pack("<I", 1 << 31)),
            (U64, struct.pack("<Q", 32)),
            (STRING, gguf_string(b"32")),
        )
        kvs.append(record(b"general.alignment", *draw(st.sampled_from(bad_alignments))))
    if "architecture" in faults and draw(st.booleans()):
        kvs[0] = draw(st.sampled_from((record(b"general.architecture", U32, struct.pack("<I", 1)), b"")))
    victim = draw(st.integers(1, len(kvs) - 1)) if len(kvs) > 1 else 0
    if "key_length" in faults:
        kvs[victim] = record(
            b"general.name", STRING, gguf_string(b"x"), key_length=draw(st.sampled_from(HUGE))
        )
    if "key_bytes" in faults:
        kvs[victim] = record(draw(st.binary(min_size=1, max_size=80)), U8, b"\x01")
    if "empty_key" in faults:
        kvs[victim] = record(b"", U8, b"\x01")
    if "value_type" in faults:
        kvs[victim] = kvs[victim][:-1] if draw(st.booleans()) else kvs[victim]
        key = b"general.name"
        kvs[victim] = record(
            key, draw(st.sampled_from((13, 0xFFFFFFFF, ARRAY, F64, BOOL))), gguf_string(b"abc")
        )
    if "wrong_payload" in faults:
        kvs[victim] = record(b"general.name", STRING, draw(st.binary(max_size=24)))
    if "duplicate_key" in faults:
        kvs.append(draw(st.sampled_from(kvs)))
    return [kv for kv in kvs if kv]


@st.composite
def tensor_table(draw: st.DrawFn, faults: set[str]) -> list[Tensor]:
    count = draw(st.integers(1, 3))
    table = []
    for index in range(count):
        ggml_type = draw(st.sampled_from((0, 1, 8, 12)))
        row = 256 if ggml_type == 12 else draw(st.sampled_from((32, 64)))
        table.append(Tensor(TENSOR_NAMES[index], (row, draw(st.integers(1, 8))), ggml_type, None, None))
    victim = draw(st.integers(0, count - 1))
    t = table[victim]
    if "tensor_name" in faults:
        t = replace(
            t, name=draw(st.one_of(st.binary(max_size=70), st.sampled_from((b"", b"x" * 63, b"x" * 64))))
        )
    if "tensor_rank" in faults:
        t = replace(t, rank=draw(st.sampled_from((0, 3, 4, 5, 255, 1 << 31))))
    if "tensor_dims" in faults:
        t = replace(t, dims=tuple(draw(st.lists(dimensions, min_size=1, max_size=4))))
    if "tensor_type" in faults:
        t = replace(t, ggml_type=draw(st.sampled_from((4, 12, 39, 40, 255, 256, 1 << 31))))
    if "tensor_offset" in faults:
        t = replace(t, offset=draw(st.one_of(st.integers(0, 4096), st.sampled_from(HUGE))))
    table[victim] = t
    if "duplicate_tensor" in faults:
        table.append(table[0])
    return table


@st.composite
def headers(draw: st.DrawFn) -> Header:
    """A sound small GGUF with up to two chosen faults, so every check, early or deep, gets exercised."""
    faults = draw(st.sets(st.sampled_from(FAULTS), max_size=2))
    counts = st.one_of(st.integers(0, 20), st.sampled_from(HUGE))
    return Header(
        version=draw(st.sampled_from((0, 1, 4, 3 << 16, 0xFFFFFFFF))) if "version" in faults else 3,
        kvs=tuple(draw(metadata(faults))),
        tensors=tuple(draw(tensor_table(faults))),
        n_kv=draw(counts) if "n_kv" in faults else None,
        n_tensors=draw(counts) if "n_tensors" in faults else None,
        data_size=draw(st.integers(0, 4096)) if "data_size" in faults else None,
        alignment=32,
    )


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """Then a few flipped bytes and maybe a cut anywhere."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()) and data:
        del data[draw(st.integers(1, len(data))) :]
    return bytes(data)


# -- the properties --------------------------------------------------------------------------------


class Outcomes:
    """Files the validator accepted, kept for the ggml cross-check; counts for the report line."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.rejected = folder, 0
        self.accepted: list[Path] = []

    def validate(self, data: bytes) -> None:
        path = self.folder / f"case-{len(self.accepted) + self.rejected}.gguf"
        path.write_bytes(data)
        with within(BOUND_SECONDS, "validate_gguf"):
            try:
                summary = validate_gguf(path)
            except ModelError as exc:
                check_user_error(exc, ModelError, path.name)
                self.rejected += 1
                path.unlink()
                return
            _check_accepted(summary, data)
        self.accepted.append(path)


def _check_accepted(summary: GgufSummary, data: bytes) -> None:
    """What validation promises about a file it passes, and that describing it cannot fail."""
    assert summary.file_size == len(data) and summary.tensors
    assert summary.data_offset % summary.alignment == 0
    for tensor in summary.tensors:
        assert tensor.offset % summary.alignment == 0
        assert tensor.offset + tensor.n_bytes <= summary.file_size
    info = model_info_from_summary(summary)
    assert info.describe().startswith(summary.path.name)
    json.dumps(info.to_dict(), ensure_ascii=False)


def ggml_accepts(paths: list[Path]) -> dict[str, bool]:
    """gguf_init_from_file (the loader llama.cpp uses) on each file, in a child process."""
    script = f"""
import ctypes, json, sys
lib = ctypes.CDLL({str(GGML_BASE)!r})
class Params(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]
lib.gguf_init_from_file.restype = ctypes.c_void_p
lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, Params]
lib.gguf_free.argtypes = [ctypes.c_void_p]
result = {{}}
for path in sys.argv[1:]:
    ctx = lib.gguf_init_from_file(path.encode(), Params(True, None))
    result[path] = bool(ctx)
    if ctx:
        lib.gguf_free(ctx)
print(json.dumps(result))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"ggml's parser crashed ({done.returncode}): {done.stderr[-2000:]}"
    accepted: dict[str, bool] = json.loads(done.stdout)
    return accepted


def assert_ggml_agrees(outcomes: Outcomes) -> None:
    print(f"{outcomes.rejected} refused, {len(outcomes.accepted)} accepted and cross-checked with ggml")
    if not outcomes.accepted:
        return
    verdicts = ggml_accepts(outcomes.accepted)
    refused = [path for path, ok in verdicts.items() if not ok]
    assert not refused, f"validate_gguf accepted files that ggml refuses: {refused[:5]}"


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    outcomes = Outcomes(tmp_path)

    @fuzz_settings(150)
    @given(st.one_of(st.binary(min_size=1, max_size=512), st.binary(max_size=512).map(lambda b: b"GGUF" + b)))
    def check(data: bytes) -> None:
        outcomes.validate(data)

    check()
    assert outcomes.rejected and not outcomes.accepted


def test_faulty_headers_are_refused_or_safe_for_ggml(tmp_path: Path) -> None:
    outcomes = Outcomes(tmp_path)

    @fuzz_settings(500)
    @given(st.one_of(headers().map(Header.encode), mutated(headers().map(Header.encode))))
    def check(data: bytes) -> None:
        outcomes.validate(data)

    check()
    assert outcomes.rejected > 100 and len(outcomes.accepted) > 50  # both sides of the line exercised
    assert_ggml_agrees(outcomes)


# -- truncation at every structure boundary -----------------------------------------------------------


class Boundaries:
    """Offsets where one GGUF field ends and the next begins, walking a well-formed file."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 24
        self.fields = [4, 8, 16, 24]  # magic, version, tensor count, metadata count
        self.elements: list[int] = []  # inside arrays: cut at each, but not on both sides of each
        n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
        for _ in range(n_kv):
            self.string(self.fields)
            value_type = self.take("<I", self.fields)
            if value_type == ARRAY:
                item_type, count = self.take("<I", self.fields), self.take("<Q", self.fields)
                for _ in range(count):
                    self.value(item_type, self.elements)
            else:
                self.value(value_type, self.fields)
        for _ in range(n_tensors):
            self.string(self.fields)
            rank = self.take("<I", self.fields)
            for _ in range(rank):
                self.take("<Q", self.fields)
            self.take("<I", self.fields)
            self.take("<Q", self.fields)

    def take(self, fmt: str, into: list[int]) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        into.append(self.pos)
        return int(value)

    def string(self, into: list[int]) -> None:
        length = self.take("<Q", into)
        self.pos += length
        into.append(self.pos)

    def value(self, value_type: int, into: list[int]) -> None:
        if value_type == STRING:
            self.string(into)
        else:
            self.take(SCALAR_FORMATS[value_type], into)

    def cuts(self) -> set[int]:
        return {c for f in self.fields for c in (f - 1, f, f + 1)} | set(self.elements)


@pytest.mark.parametrize("writer", [write_tiny_llama, write_tiny_clip, write_tiny_gemma3n])
def test_every_structure_boundary_truncation_is_reported(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    """Cut just before, at and after every field boundary and tensor start/end: always 'truncated'."""
    source = writer(tmp_path / "source.gguf")
    data = source.read_bytes()
    summary = validate_gguf(source)
    cuts = Boundaries(data).cuts()
    for tensor in summary.tensors:
        cuts.update((tensor.offset - 1, tensor.offset, tensor.offset + 1, tensor.offset + tensor.n_bytes - 1))
    target = tmp_path / "cut.gguf"
    for size in sorted(
        c for c in cuts if 0 < c < len(data) and c < max(t.offset + t.n_bytes for t in summary.tensors)
    ):
        target.write_bytes(data[:size])
        with within(BOUND_SECONDS, f"validating a cut at {size}"), pytest.raises(ModelFileError) as caught:
            validate_gguf(target)
        check_user_error(caught.value, ModelFileError, "cut.gguf")
        assert "truncated" in str(caught.value) or size < 24, (size, str(caught.value))


EDGE_SHAPES = [
    (32, 1 << 62, 0),
    (32, 0, 1 << 62, 4),
    (0, (1 << 63) - 1),
    (32, 1, 0, (1 << 63) - 1),
    ((1 << 62), 0, 2),
    ((1 << 63) - 1, 0),
    (0,),
    (32, 0),
    (0, 0, 0, 0),
]


def test_overflowing_shapes_without_elements_are_judged_like_ggml(tmp_path: Path) -> None:
    """Zero-element tensors with huge dims: ggml refuses some by its running-product rule; so must we."""
    paths, ours = [], {}
    for index, dims in enumerate(EDGE_SHAPES):
        path = tmp_path / f"shape{index}.gguf"
        header = Header(
            3,
            (record(b"general.architecture", STRING, gguf_string(b"llama")),),
            (Tensor(b"w", dims, 0, None, None),),
            None,
            None,
            None,
            32,
        )
        path.write_bytes(header.encode())
        try:
            validate_gguf(path)
            ours[str(path)] = True
        except ModelFileError as exc:
            check_user_error(exc, ModelFileError, path.name)
            ours[str(path)] = False
        paths.append(path)
    assert ours == ggml_accepts(paths)
    assert set(ours.values()) == {True, False}


def test_real_tiny_gemma3n_cut_at_sampled_boundaries(tiny_model: Path, tmp_path: Path) -> None:
    """The 79 MB synthetic model (262,400-token vocabulary) cut inside the header and at tensor edges."""
    data = tiny_model.read_bytes()
    summary = validate_gguf(tiny_model)
    rng = random.Random(9)
    header_cuts = sorted(Boundaries(data).cuts())
    tensor_cuts = [edge for t in summary.tensors for edge in (t.offset, t.offset + t.n_bytes - 1)]
    per_kind = 400 if LONG else 30
    cuts = rng.sample(header_cuts, per_kind) + rng.sample(tensor_cuts, per_kind)
    target = tmp_path / "cut.gguf"
    shutil.copyfile(tiny_model, target)
    for size in sorted(cuts, reverse=True):  # shrinking one copy in place: no 79 MB rewrite per cut
        os.truncate(target, size)
        with within(BOUND_SECONDS, f"validating a cut at {size}"), pytest.raises(ModelFileError) as caught:
            validate_gguf(target)
        check_user_error(caught.value, ModelFileError, "cut.gguf")


@linux_only
def test_zero_filled_vocabulary_is_walked_fast_in_bounded_memory(tmp_path: Path) -> None:
    """A header claiming 4M empty strings over a sparse, zero-filled tail: no minutes-long walk."""
    result = run_bounded(
        f"""
        import struct, time
        from model_io.errors import ModelError
        from model_io.gguf_check import validate_gguf

        def case():
            outcomes = {{}}
            for count in ((1 << 22), (1 << 22) + 1, (1 << 30) - 1):
                path = {str(tmp_path)!r} + f"/sparse-{{count}}.gguf"
                name = struct.pack("<Q", 20) + b"general.architecture"
                tokens = struct.pack("<Q", 21) + b"tokenizer.ggml.tokens"
                head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
                head += name + struct.pack("<I", 8) + struct.pack("<Q", 5) + b"llama"
                head += tokens + struct.pack("<IIQ", 9, 8, count)
                with open(path, "wb") as handle:
                    handle.write(head)
                    handle.truncate(len(head) + 8 * min(count, 1 << 22) + 64)
                started = time.perf_counter()
                try:
                    validate_gguf(path)
                    outcomes[count] = ["accepted", 0.0]
                except ModelError as exc:
                    outcomes[count] = [str(exc), time.perf_counter() - started]
            return outcomes
        """
    )
    walked, capped, absurd = (result[str(n)] for n in ((1 << 22), (1 << 22) + 1, (1 << 30) - 1))
    assert "no tensors" in walked[0] and walked[1] < 20, walked  # every string visited, none kept
    assert "far more than any real vocabulary" in capped[0] and capped[1] < 1, capped
    assert "more than the file can hold" in absurd[0] and absurd[1] < 1, absurd
    assert result["rss_growth_mb"] < 100, result  # ≈ the 32 MB of length prefixes, mapped from the file
